package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

var durationUnits = map[string]time.Duration{}

func init() {
	for unit, names := range map[time.Duration]string{
		time.Nanosecond:  "ns nano nanos nanosecond nanoseconds",
		time.Microsecond: "us micro micros microsecond microseconds",
		time.Millisecond: "ms milli millis millisecond milliseconds",
		time.Second:      "s second seconds",
		time.Minute:      "m minute minutes",
		time.Hour:        "h hour hours",
		24 * time.Hour:   "d day days",
	} {
		for _, name := range strings.Fields(names) {
			durationUnits[name] = unit
		}
	}
}

// parseDuration reads a HOCON duration: a number, optional spaces and a unit
// (`500ms`, `30 days`, `1.5h`); a bare number is milliseconds.
func parseDuration(s string) (time.Duration, error) {
	num, unit := splitUnit(s)
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("bad number %q", num)
	}
	mult := time.Millisecond
	if unit != "" {
		var ok bool
		if mult, ok = durationUnits[unit]; !ok {
			return 0, fmt.Errorf("bad unit %q", unit)
		}
	}
	return time.Duration(f * float64(mult)), nil
}

// sizeUnits are HOCON's: single letters and the -i forms are powers of two,
// kB, MB… powers of ten.
var sizeUnits = map[string]int64{
	"": 1, "b": 1, "B": 1, "byte": 1, "bytes": 1,
	"k": 1 << 10, "K": 1 << 10, "Ki": 1 << 10, "KiB": 1 << 10, "kibibyte": 1 << 10, "kibibytes": 1 << 10,
	"m": 1 << 20, "M": 1 << 20, "Mi": 1 << 20, "MiB": 1 << 20, "mebibyte": 1 << 20, "mebibytes": 1 << 20,
	"g": 1 << 30, "G": 1 << 30, "Gi": 1 << 30, "GiB": 1 << 30, "gibibyte": 1 << 30, "gibibytes": 1 << 30,
	"kB": 1e3, "kilobyte": 1e3, "kilobytes": 1e3,
	"MB": 1e6, "megabyte": 1e6, "megabytes": 1e6,
	"GB": 1e9, "gigabyte": 1e9, "gigabytes": 1e9,
}

// parseSize reads a HOCON size in bytes (`1MiB`, `1M`, `512k`, `1000`).
func parseSize(s string) (int64, error) {
	num, unit := splitUnit(s)
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("bad unit %q", unit)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("bad number %q", num)
	}
	return int64(f * float64(mult)), nil
}

// splitUnit splits "30 days" into "30" and "days".
func splitUnit(s string) (num, unit string) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool {
		return (r < '0' || r > '9') && r != '.' && r != '-' && r != '+'
	})
	if i < 0 {
		return s, ""
	}
	return strings.TrimSpace(s[:i]), strings.TrimSpace(s[i:])
}

// formatDuration writes d in the largest HOCON unit that divides it; days
// only from a week, as 72h reads better than 3d.
// FormatDuration writes d as a HOCON duration, in the largest unit that
// divides it (30d, 10m, 500ms), as `check` shows durations.
func FormatDuration(d time.Duration) string { return formatDuration(d) }

func formatDuration(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if d != 0 && d%u.d == 0 && (u.name != "d" || d >= 7*24*time.Hour) {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	if d == 0 {
		return "0s"
	}
	return d.String()
}

// formatSize writes n in the largest power-of-two unit that divides it.
// FormatSize shows a byte count as the config writes it (1MiB, 512KiB).
func FormatSize(n int64) string { return formatSize(n) }

func formatSize(n int64) string {
	for _, u := range []struct {
		n    int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n != 0 && n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

func itoa(i int) string { return strconv.Itoa(i) }
