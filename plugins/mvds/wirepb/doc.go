// Package wirepb is the generated Go code of mvds.proto, the mvds sync
// layer's wire format: the 2/MVDS Payload and Message, and Strata's Body.
// The .proto file documents every field; `make proto` regenerates the code.
package wirepb
