package config

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
)

// yamlLine matches the position the YAML parser puts before its message.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// locateYAMLError corrects the line of a YAML syntax error in the file at
// path. The parser reports the line before the construct it was reading
// when it failed (and for some mistakes the construct started lines
// earlier than the mistake), so the line is found again: the mistake is on
// the line after the longest beginning of the file that parses. The error
// then names that line and quotes it. Other errors are returned as they
// are.
func locateYAMLError(path string, err error) error {
	if !yamlLine.MatchString(err.Error()) {
		return err
	}
	b, rerr := os.ReadFile(path)
	if rerr != nil {
		return err
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	p := yaml.Parser()
	bad := 1
	for k := len(lines) - 1; k > 0; k-- {
		if _, perr := p.Unmarshal([]byte(strings.Join(lines[:k], "\n") + "\n")); perr == nil {
			bad = k + 1
			break
		}
	}
	msg := yamlLine.ReplaceAllString(err.Error(), "")
	return fmt.Errorf("line %d: %s: %s", bad, strconv.Quote(lines[bad-1]), msg)
}
