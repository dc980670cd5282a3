package wire

// ProtocolVersion is an MLS protocol version (RFC 9420 §6).
type ProtocolVersion uint16

// MLS10 is the only protocol version, "mls10".
const MLS10 ProtocolVersion = 1

// CipherSuite is an MLS cipher suite identifier (RFC 9420 §17.1).
type CipherSuite uint16

// ExtensionType is an MLS extension type (RFC 9420 §17.3).
type ExtensionType uint16

// The extension types of RFC 9420.
const (
	ExtensionApplicationID        ExtensionType = 1
	ExtensionRatchetTree          ExtensionType = 2
	ExtensionRequiredCapabilities ExtensionType = 3
	ExtensionExternalPub          ExtensionType = 4
	ExtensionExternalSenders      ExtensionType = 5
)

// CredentialType is an MLS credential type (RFC 9420 §5.3).
type CredentialType uint16

// The credential types of RFC 9420.
const (
	CredentialBasic CredentialType = 1
	CredentialX509  CredentialType = 2
)

// WireFormat says which message an MLSMessage carries (RFC 9420 §6).
type WireFormat uint16

// The wire formats of RFC 9420.
const (
	WireFormatPublicMessage  WireFormat = 1
	WireFormatPrivateMessage WireFormat = 2
	WireFormatWelcome        WireFormat = 3
	WireFormatGroupInfo      WireFormat = 4
	WireFormatKeyPackage     WireFormat = 5
)

// ContentType is the type of a FramedContent's content (RFC 9420 §6).
type ContentType uint8

// The content types of RFC 9420.
const (
	ContentApplication ContentType = 1
	ContentProposal    ContentType = 2
	ContentCommit      ContentType = 3
)

func (c ContentType) valid() bool { return c >= ContentApplication && c <= ContentCommit }

// SenderType is the kind of sender of a FramedContent (RFC 9420 §6).
type SenderType uint8

// The sender types of RFC 9420.
const (
	SenderMember            SenderType = 1
	SenderExternal          SenderType = 2
	SenderNewMemberProposal SenderType = 3
	SenderNewMemberCommit   SenderType = 4
)

// LeafNodeSource says how a LeafNode came to be (RFC 9420 §7.2).
type LeafNodeSource uint8

// The leaf node sources of RFC 9420.
const (
	LeafNodeSourceKeyPackage LeafNodeSource = 1
	LeafNodeSourceUpdate     LeafNodeSource = 2
	LeafNodeSourceCommit     LeafNodeSource = 3
)

// NodeType tells a leaf from a parent in a ratchet tree (RFC 9420 §7.8).
type NodeType uint8

// The node types of RFC 9420.
const (
	NodeTypeLeaf   NodeType = 1
	NodeTypeParent NodeType = 2
)

// ProposalType is the type of a Proposal (RFC 9420 §17.4).
type ProposalType uint16

// The proposal types of RFC 9420.
const (
	ProposalAdd                    ProposalType = 1
	ProposalUpdate                 ProposalType = 2
	ProposalRemove                 ProposalType = 3
	ProposalPSK                    ProposalType = 4
	ProposalReInit                 ProposalType = 5
	ProposalExternalInit           ProposalType = 6
	ProposalGroupContextExtensions ProposalType = 7
)

// PSKType is the kind of a pre-shared key (RFC 9420 §8.4).
type PSKType uint8

// The PSK types of RFC 9420.
const (
	PSKExternal   PSKType = 1
	PSKResumption PSKType = 2
)

// ResumptionPSKUsage says what a resumption PSK is for (RFC 9420 §8.4).
type ResumptionPSKUsage uint8

// The resumption PSK usages of RFC 9420.
const (
	ResumptionApplication ResumptionPSKUsage = 1
	ResumptionReInit      ResumptionPSKUsage = 2
	ResumptionBranch      ResumptionPSKUsage = 3
)

// ProposalOrRefType tells an inline proposal from a reference (RFC 9420 §12.4).
type ProposalOrRefType uint8

// The ProposalOrRef types of RFC 9420.
const (
	ProposalOrRefProposal  ProposalOrRefType = 1
	ProposalOrRefReference ProposalOrRefType = 2
)
