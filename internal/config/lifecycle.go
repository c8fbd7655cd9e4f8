package config

import (
	"strconv"
	"time"
)

// refreshAfter reads cache-refresh-days: a whole number of days, 0 for never.
func refreshAfter(p *problems, v string) time.Duration {
	days, err := strconv.Atoi(v)
	if err != nil || days < 0 {
		p.add("cache-refresh-days: %q is not a whole number of days (0 turns refreshing off); keep it below the expiry days of your ECR lifecycle rule", v)
		return 0
	}
	return time.Duration(days) * 24 * time.Hour
}
