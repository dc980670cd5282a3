package syncv1

// CapValidity is the capability (PluginInfo.provides) of a sync layer that
// keeps BSP's message states behind the validator hook (AckRequest's
// rejected and deferred): a rejected message is invalid and so is every
// message that depends on it; a deferred message is pending until its
// dependencies are delivered, then delivered again. Every sync layer
// stops passing on a message its host rejected; only one with this
// capability does the rest. The sync conformance suite checks each part
// where the layer claims it.
const CapValidity = "validity"

// MaxDeferralDependencies bounds Deferral.dependencies.
const MaxDeferralDependencies = 32
