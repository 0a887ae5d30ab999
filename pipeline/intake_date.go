package pipeline

import (
	"regexp"
)

var dateRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
