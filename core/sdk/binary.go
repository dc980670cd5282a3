//go:build unix

package sdk

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrUnsafeFile is returned by OpenTrusted and OpenBinary for a file that
// someone other than this user and root could have written or replaced.
var ErrUnsafeFile = errors.New("unsafe file")

// OpenBinary opens a plugin binary for hashing and executing, after the
// checks of OpenTrusted, and refuses it unless it is executable. Launch
// hashes the open file and executes that same file (through the file
// descriptor, never the path again), so what runs is what was hashed.
func OpenBinary(path string) (*os.File, error) {
	f, st, err := openTrusted(path)
	if err != nil {
		return nil, err
	}
	if st.Mode&0o111 == 0 {
		f.Close()
		return nil, fmt.Errorf("%w: plugin %s is not executable (mode %v); chmod u+x it", ErrUnsafeFile, path, os.FileMode(st.Mode&0o777))
	}
	return f, nil
}

// OpenTrusted opens a file the host takes on trust (a plugin binary, a
// lock file) so that nobody but this user and root can have changed it
// under us:
//
//   - the file is opened without following a symlink (O_NOFOLLOW), and the
//     checks below are of the open file (fstat), not of a path that could
//     be swapped between the check and the use;
//   - it is a regular file, owned by this user or root, and not writable
//     by group or others;
//   - the directory that holds it is owned by this user or root and not
//     writable by group or others (whoever can write it can replace the
//     file);
//   - so is every directory above it, up to /, with one exception: a
//     directory owned by root with the sticky bit (/tmp, /var/tmp) may be
//     writable by everyone, because the sticky bit stops other users from
//     renaming or removing what they do not own, so the entry of ours below
//     it cannot be replaced. The directory that holds the file gets no such
//     exception: in a sticky world-writable directory anyone may still add
//     a file of a name we would look for.
//
// The directories are walked from / with openat and O_NOFOLLOW, each
// checked through its own descriptor. Symlinks in the directory part of
// path are resolved first (filepath.EvalSymlinks), and the directories
// checked are those of the resolved path. A missing file is an error that
// wraps os.ErrNotExist.
func OpenTrusted(path string) (*os.File, error) {
	f, _, err := openTrusted(path)
	return f, err
}

func openTrusted(path string) (*os.File, *unix.Stat_t, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, err
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return nil, nil, err
	}
	name := filepath.Base(abs)
	dfd, err := openDirChain(dir)
	if err != nil {
		return nil, nil, err
	}
	defer unix.Close(dfd)
	// O_NONBLOCK: a FIFO put in the file's place must not block the host;
	// it is refused below as not a regular file.
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, nil, fmt.Errorf("%w: %s is a symlink (symlinks are refused: one could be swapped between the check and the use)", ErrUnsafeFile, path)
		}
		return nil, nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if err := checkFile(path, &st); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	return os.NewFile(uintptr(fd), path), &st, nil
}

// checkFile is the check of the file itself.
func checkFile(path string, st *unix.Stat_t) error {
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%w: %s is not a regular file", ErrUnsafeFile, path)
	}
	if err := checkOwner(path, st); err != nil {
		return err
	}
	if st.Mode&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by group or others (mode %v); chmod go-w %s", ErrUnsafeFile, path, os.FileMode(st.Mode&0o777), path)
	}
	return nil
}

// checkOwner refuses a file or directory that neither this user nor root
// owns: its owner could change it.
func checkOwner(path string, st *unix.Stat_t) error {
	if uid := int(st.Uid); uid != os.Geteuid() && uid != 0 {
		return fmt.Errorf("%w: %s is owned by uid %d, not by this user (uid %d) or root; chown it, or move it somewhere that is", ErrUnsafeFile, path, uid, os.Geteuid())
	}
	return nil
}

// openDirChain opens dir (absolute, without symlinks) one component at a
// time from /, checking each directory as OpenTrusted describes, and
// returns the descriptor of dir.
func openDirChain(dir string) (int, error) {
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: "/", Err: err}
	}
	parts := strings.Split(strings.Trim(dir, "/"), "/")
	if parts[0] == "" {
		parts = nil
	}
	cur := "/"
	for i := 0; ; i++ {
		if err := checkDir(fd, cur, i == len(parts)); err != nil {
			unix.Close(fd)
			return -1, err
		}
		if i == len(parts) {
			return fd, nil
		}
		next, err := unix.Openat(fd, parts[i], unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		cur = filepath.Join(cur, parts[i])
		if err != nil {
			// EvalSymlinks resolved every link: one now means the path
			// changed under us.
			return -1, &os.PathError{Op: "open", Path: cur, Err: err}
		}
		fd = next
	}
}

// checkDir checks one directory of the chain through its descriptor; last
// is the directory that holds the file.
func checkDir(fd int, path string, last bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if err := checkOwner(path, &st); err != nil {
		return err
	}
	if st.Mode&0o022 == 0 {
		return nil
	}
	if !last && st.Mode&unix.S_ISVTX != 0 && st.Uid == 0 {
		return nil // /tmp and the like: see OpenTrusted
	}
	return fmt.Errorf("%w: directory %s is writable by group or others (mode %v): whoever can write it can replace what is in it; chmod go-w %s", ErrUnsafeFile, path, os.FileMode(st.Mode&0o777), path)
}

// execOpenFile makes cmd execute bin, the file Launch opened and hashed,
// rather than whatever its path names when the process starts: the child
// receives bin as descriptor 3 and executes it through fdExecPath. The
// plugin keeps descriptor 3 open, read-only, on its own binary.
func execOpenFile(cmd *exec.Cmd, bin *os.File) {
	cmd.Path = fdExecPath
	cmd.ExtraFiles = []*os.File{bin}
}

// setRunAs makes cmd run as another user: uid and gid, and no
// supplementary groups (the host's are dropped).
func setRunAs(cmd *exec.Cmd, r *RunAs) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: r.UID, Gid: r.GID, Groups: []uint32{}}
	return nil
}
