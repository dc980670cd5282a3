package sdk

// SetLaunchHook sets the function Launch calls between hashing a binary
// and starting it, and returns the function that removes it.
func SetLaunchHook(f func(path string)) (restore func()) {
	launchHook = f
	return func() { launchHook = nil }
}
