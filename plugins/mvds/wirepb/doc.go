// Package wirepb is the generated Go code of mvds.proto, the mvds sync
// layer's wire format: the 2/MVDS Payload and Message, the 4/MVDS-META
// Metadata, and Strata's extensions (bound messages and their Body, the
// author of a relayed copy). The .proto file documents every field; `make
// proto` regenerates the code.
package wirepb
