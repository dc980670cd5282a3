package api

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TokenFileName is the file in <data_dir>/host where a node that serves
// its API on TCP keeps the token its clients must send.
const TokenFileName = "api.token"

// TokenPath returns the token file of the node whose data directory is
// dataDir.
func TokenPath(dataDir string) string {
	return filepath.Join(dataDir, "host", TokenFileName)
}

// tokenKey is the gRPC metadata key that carries the token, as
// "Bearer <token>".
const (
	tokenKey    = "authorization"
	tokenPrefix = "Bearer "
)

// ErrNoToken reports that a node's token file does not exist: the node is
// not running, or does not serve its API on TCP.
var ErrNoToken = errors.New("no API token")

// tokenBytes is the size of a token, before hex.
const tokenBytes = 32

// writeToken makes a new token and writes it to path with mode 0600,
// replacing the token of an earlier run. The file is written beside its
// final name and renamed over it, so a client never reads half a token.
func writeToken(path string) (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	token := hex.EncodeToString(b)
	if err := checkDir(filepath.Dir(path)); err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	tmp := path + ".new"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("api token: %w", err)
	}
	// O_EXCL|O_NOFOLLOW: the file is a new one of ours, not one that was
	// put there (or a link to one) for us to write the token into.
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	_, err = f.WriteString(token + "\n")
	if err == nil {
		err = f.Chmod(0o600) // whatever the umask was
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("api token: %w", err)
	}
	return token, nil
}

// ReadToken reads the token file at path, as a client of a node's API on
// TCP does. It refuses a file that is not a regular file of this user's
// with no access for group or others: a token that someone else could
// have read or written is not one to trust or to send.
func ReadToken(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w at %s: is the node running (strata run -c ...) with its API on TCP?", ErrNoToken, path)
	}
	if err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("api token %s: not a regular file", path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Getuid() {
		return "", fmt.Errorf("api token %s: owned by another user, not by this one (uid %d): a node writes its token as the user it runs as", path, os.Getuid())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("api token %s: mode %04o lets other users read or change it: restart the node (it writes a new token, mode 0600)", path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4*tokenBytes))
	if err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if _, err := hex.DecodeString(token); err != nil || len(token) != 2*tokenBytes {
		return "", fmt.Errorf("api token %s: not a token (want %d hex digits)", path, 2*tokenBytes)
	}
	return token, nil
}

// tokenCheck is the server side: every call on TCP must carry the token.
type tokenCheck struct {
	want []byte
	path string
}

func (t tokenCheck) check(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	ok := 0
	for _, v := range md.Get(tokenKey) {
		if got, found := strings.CutPrefix(v, tokenPrefix); found {
			ok |= subtle.ConstantTimeCompare([]byte(got), t.want)
		}
	}
	if ok == 1 {
		return nil
	}
	// Neither the token nor what the client sent is in the message.
	return status.Errorf(codes.Unauthenticated,
		"the messaging API on TCP takes only calls with the node's token (in %s) as the metadata %q: %q; the strata CLI sends it itself",
		t.path, tokenKey, tokenPrefix+"<token>")
}

func (t tokenCheck) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (t tokenCheck) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := t.check(ss.Context()); err != nil {
		return err
	}
	return handler(srv, ss)
}

// tokenCredentials is the client side: it reads the token file for each
// call, so that a client outliving a restart of the node sends the new
// token.
type tokenCredentials struct {
	path string
}

func (c tokenCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	token, err := ReadToken(c.path)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	return map[string]string{tokenKey: tokenPrefix + token}, nil
}

// RequireTransportSecurity is false: the API is on loopback only, where
// the token travels in the clear between two processes of this machine.
func (tokenCredentials) RequireTransportSecurity() bool { return false }
