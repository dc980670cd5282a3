package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Dial connects to a node's messaging API at target: "unix:<path>" or a
// loopback "host:port". On a Unix socket it checks that the socket, and
// the process that serves it, are this user's. On TCP it sends the token
// from tokenFile (TokenPath of the node's data directory) with every call,
// read again for each, and refuses a target that is not loopback, where
// the token would cross a network in the clear.
func Dial(target, tokenFile string) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage)),
	}
	if sock, ok := strings.CutPrefix(target, "unix:"); ok {
		if err := checkSocket(sock); err != nil {
			return nil, err
		}
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return dialUnix(ctx, sock)
		}))
		return grpc.NewClient("passthrough:///localhost", opts...)
	}
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return nil, fmt.Errorf("api %s: not unix:<path> or host:port", target)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("api %s: not a loopback address; a node serves its API on this machine only", target)
	}
	if tokenFile == "" {
		return nil, fmt.Errorf("api %s: the API on TCP needs the node's token: give the node's config (-c FILE), whose data directory holds it, or its token file (--api-token FILE)", target)
	}
	if _, err := ReadToken(tokenFile); err != nil {
		return nil, err
	}
	opts = append(opts, grpc.WithPerRPCCredentials(tokenCredentials{path: tokenFile}))
	return grpc.NewClient(target, opts...)
}

// checkSocket refuses a socket file that is not a socket of this user's:
// a node's socket is created by the user the node runs as.
func checkSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no node API at %s: is the node running (strata run -c ...)?", path)
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("api %s: not a socket", path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Getuid() {
		return fmt.Errorf("api %s: the socket belongs to another user, not to this one (uid %d)", path, os.Getuid())
	}
	return nil
}

// dialUnix connects to the socket at path and checks, by the peer
// credentials, that the process serving it runs as this user.
func dialUnix(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	uid, err := peerUID(c)
	if err == nil && uid != os.Getuid() {
		err = fmt.Errorf("api %s is served by another user (uid %d), not by this one (uid %d)", path, uid, os.Getuid())
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
