package sdk

import (
	"fmt"

	"github.com/hashicorp/go-plugin"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// ProtocolVersion is the plugin API generation this SDK speaks: the
// go-plugin protocol version negotiated at the handshake. It changes only
// when the core/api packages change incompatibly (v1 → v2); hosts keep
// speaking every generation they support through VersionedPlugins.
const ProtocolVersion = 1

// Handshake is the go-plugin handshake shared by the host and every plugin.
// The cookie only stops a plugin binary from being run by hand by mistake;
// it is not a security measure (checksums and AutoMTLS are).
var handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "STRATA_PLUGIN",
	MagicCookieValue: "a5c0ffee-strata-layer-plugin",
}

// kindNames maps a layer kind to its name in the go-plugin PluginSet and in
// config files.
var kindNames = map[commonv1.LayerKind]string{
	commonv1.LayerKind_LAYER_KIND_P2P:     "p2p",
	commonv1.LayerKind_LAYER_KIND_PRIVACY: "privacy",
	commonv1.LayerKind_LAYER_KIND_SECURE:  "secure",
	commonv1.LayerKind_LAYER_KIND_SYNC:    "sync",
}

// KindName returns the config and plugin-set name of a layer kind ("p2p",
// "privacy", "secure", "sync").
func KindName(k commonv1.LayerKind) string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("kind(%d)", int32(k))
}

// ParseKind is the inverse of KindName.
func ParseKind(name string) (commonv1.LayerKind, error) {
	for k, n := range kindNames {
		if n == name {
			return k, nil
		}
	}
	return commonv1.LayerKind_LAYER_KIND_UNSPECIFIED, fmt.Errorf("unknown layer kind %q (want p2p, privacy, secure or sync)", name)
}
