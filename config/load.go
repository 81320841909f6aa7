package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Problem is one thing wrong with a config file.
type Problem struct {
	Key  string // dotted key with array indexes, e.g. "services[1].instances[0].weight"
	Line int    // 1-based; 0 when the key is not in the file (a missing required key)
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", p.Line, p.Key, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.Key, p.Msg)
}

// Problems is the error Load and Parse return: every problem found, in file
// order.
type Problems []Problem

func (ps Problems) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "config: %d problem(s):", len(ps))
	for _, p := range ps {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Load reads and parses the file at path. Relative file names in it (JWT
// keys) are taken from the file's directory, as nginx and Caddy do.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return ParseDir(data, filepath.Dir(path))
}

// Parse decodes data, fills defaults and validates. On failure the error is
// Problems. Relative file names are taken from the working directory.
func Parse(data []byte) (*Config, error) { return ParseDir(data, "") }

// ParseDir is Parse with relative file names taken from dir.
func ParseDir(data []byte, dir string) (*Config, error) {
	lines, perr := keyLines(data)
	if perr != nil {
		return nil, Problems{*perr}
	}
	// Decode twice: strictly, to list unknown keys, then leniently, so that
	// the rest of the file is validated too and every problem is listed.
	var c Config
	v := validator{lines: lines}
	err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().EnableUnmarshalerInterface().Decode(&c)
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		v.ps = append(v.ps, unknownKeys(strict, lines)...)
		c = Config{}
		err = toml.NewDecoder(bytes.NewReader(data)).EnableUnmarshalerInterface().Decode(&c)
	}
	if err != nil {
		return nil, append(v.ps, decodeProblem(err, lines))
	}
	c.setDefaults()
	c.resolveFiles(dir)
	c.validate(&v)
	if len(v.ps) > 0 {
		sort.SliceStable(v.ps, func(i, j int) bool { return lineKey(v.ps[i]) < lineKey(v.ps[j]) })
		return nil, v.ps
	}
	return &c, nil
}

func lineKey(p Problem) int {
	if p.Line == 0 {
		return 1 << 30
	}
	return p.Line
}

// unknownKeys lists each unknown key.
func unknownKeys(strict *toml.StrictMissingError, lines map[string]int) Problems {
	ps := make(Problems, 0, len(strict.Errors))
	for _, e := range strict.Errors {
		line, _ := e.Position()
		ps = append(ps, Problem{Key: fullKey(e.Key(), line, lines), Line: line, Msg: "unknown key"})
	}
	return ps
}

func decodeProblem(err error, lines map[string]int) Problem {
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ := de.Position()
		return Problem{Key: fullKey(de.Key(), line, lines), Line: line, Msg: de.Error()}
	}
	return Problem{Key: "(file)", Msg: err.Error()}
}

// fullKey names a key the decoder reports (without array indexes, perhaps
// only its last part) as Problem.Key does, through the line it is on.
func fullKey(parts []string, line int, lines map[string]int) string {
	key := joinKey(parts)
	if len(parts) == 0 {
		return key
	}
	last := joinKey(parts[len(parts)-1:])
	for k, l := range lines {
		if l == line && (k == key || k == last || strings.HasSuffix(k, "."+last)) {
			return k
		}
	}
	return key
}

// joinKey joins key parts with dots, writing an empty part as "".
func joinKey(parts []string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('.')
		}
		if p == "" {
			p = `""`
		}
		b.WriteString(p)
	}
	if b.Len() == 0 {
		return `""`
	}
	return b.String()
}

// keyLines maps every key and table of the document to the line it is on,
// keyed like Problem.Key.
func keyLines(data []byte) (map[string]int, *Problem) {
	var p unstable.Parser
	p.Reset(data)
	lines := map[string]int{}
	next := map[string]int{} // array-of-tables path -> count so far
	table := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = resolve(next, "", e.Key(), e.Kind == unstable.ArrayTable)
			lines[table] = lineOf(&p, e.Key())
		case unstable.KeyValue:
			lines[resolve(next, table, e.Key(), false)] = lineOf(&p, e.Key())
		}
	}
	if err := p.Error(); err != nil {
		line := 0
		var pe *unstable.ParserError
		if errors.As(err, &pe) {
			line = p.Shape(p.Range(pe.Highlight)).Start.Line
		}
		return nil, &Problem{Key: "(syntax)", Line: line, Msg: err.Error()}
	}
	return lines, nil
}

// resolve joins key parts under base. Parts naming an array of tables refer
// to its last element; when array is set the key itself gets a new element.
func resolve(next map[string]int, base string, key unstable.Iterator, array bool) string {
	path := base
	for key.Next() {
		if path != "" {
			path += "."
		}
		part := string(key.Node().Data)
		if part == "" {
			part = `""`
		}
		path += part
		if n, ok := next[path]; ok && (!array || !key.IsLast()) {
			path += "[" + strconv.Itoa(n-1) + "]"
		}
	}
	if array {
		n := next[path]
		next[path] = n + 1
		path += "[" + strconv.Itoa(n) + "]"
	}
	return path
}

func lineOf(p *unstable.Parser, key unstable.Iterator) int {
	if key.Next() {
		if r := key.Node().Raw; r.Length > 0 {
			return p.Shape(r).Start.Line
		}
	}
	return 0
}

// UnmarshalTOML implements unstable.Unmarshaler. A bad value is recorded and
// reported by validation with the others, not returned.
func (d *Duration) UnmarshalTOML(raw []byte) error {
	d.set = true
	s, ok := unquote(raw)
	if !ok {
		d.err = fmt.Sprintf("want a duration string such as \"2s\", got %s", raw)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.err = fmt.Sprintf("bad duration %q (want e.g. \"2s\", \"150ms\")", s)
		return nil
	}
	d.Duration = v
	return nil
}

// UnmarshalTOML implements unstable.Unmarshaler; see Duration.
func (z *Size) UnmarshalTOML(raw []byte) error {
	z.set = true
	s, quoted := unquote(raw)
	if !quoted {
		s = string(bytes.TrimSpace(raw))
	}
	n, err := ParseSize(s)
	if err != nil {
		z.err = err.Error()
		return nil
	}
	z.N = n
	return nil
}

// unquote decodes raw as a TOML string (any of the four forms), or reports
// that it is not one.
func unquote(raw []byte) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '"' && raw[0] != '\'' {
		return "", false
	}
	var v struct{ V string }
	if err := toml.Unmarshal(append([]byte("V = "), raw...), &v); err != nil {
		return "", false
	}
	return v.V, true
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// ParseSize parses a byte count: digits, optionally followed by B, KB, MB,
// GB (powers of 1000) or KiB, MiB, GiB (powers of 1024).
func ParseSize(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(num, "_", ""), 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q (want bytes as an integer, or e.g. \"4MiB\", \"8KiB\")", s)
	}
	return n * mult, nil
}
