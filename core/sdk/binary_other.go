//go:build !unix

package sdk

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// ErrUnsafeFile: see binary.go.
var ErrUnsafeFile = errors.New("unsafe file")

// OpenBinary opens a plugin binary. Where there is no Unix, only the file
// itself is checked, and it is executed by its path again (see binary.go
// for what Unix systems do).
func OpenBinary(path string) (*os.File, error) { return OpenTrusted(path) }

// OpenTrusted opens a regular file that is not a symlink.
func OpenTrusted(path string) (*os.File, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file (symlinks are refused)", ErrUnsafeFile, path)
	}
	return os.Open(path)
}

func execOpenFile(cmd *exec.Cmd, bin *os.File) { cmd.Path = bin.Name() }

func setRunAs(*exec.Cmd, *RunAs) error {
	return errors.New("running a plugin as another user needs a Unix system")
}
