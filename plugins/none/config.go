package none

// DefaultMaxPayload is the default largest payload: 1 MiB (the libp2p
// layer's default frame limit) less the largest envelope header (1 version
// byte, a 2-byte length and a 255-byte conversation id), rounded down.
const DefaultMaxPayload = 1<<20 - 512

// Config is the layer's config section; its tags are the schema.
type Config struct {
	// MaxPayload is the largest payload accepted from above, in bytes.
	MaxPayload int64 `json:"max_payload" default:"1048064" min:"1" max:"16777216" desc:"largest payload accepted from above, in bytes"`
}
