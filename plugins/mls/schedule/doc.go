// Package schedule implements the MLS key schedule (RFC 9420 §8): the
// joiner, welcome, epoch and init secrets and the secrets derived from each
// epoch, pre-shared key chaining (§8.4), the exporter (§8.5), the secret tree
// that gives per-sender message keys (§9) and the transcript hashes and
// confirmation tag (§8.2, §6.1).
//
// The package works on encoded structures (GroupContext, PreSharedKeyID,
// ConfirmedTranscriptHashInput) as bytes, so it needs no knowledge of their
// fields; plugins/mls/wire produces them.
//
// Secrets are zeroed when they are consumed or dropped, as far as Go lets a
// library do so: the slices this package hands out belong to the caller.
package schedule
