package intake

import (
	"regexp"
)

var DateRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
