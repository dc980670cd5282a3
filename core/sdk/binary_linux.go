package sdk

// fdExecPath is the path through which a child process executes the file
// it holds open as descriptor 3: the file itself, whatever has since
// happened to the path it was opened by.
const fdExecPath = "/proc/self/fd/3"
