# analytics-agent (policies/analytics-agent/src/lib.rs): reads dashboards
# and runs metric queries on the analytics service, at most 20 requests a
# minute; every other write is denied.
package airlock.analytics_agent

reads := {"GET", "HEAD"}

max_per_minute := 20

default decision := "deny"

decision := "allow" if {
	allow
	not over_rate_limit
}

allow if {
	input.service == "analytics"
	input.context.method in reads
}

allow if {
	input.service == "analytics"
	input.operation == "metrics.query"
	input.context.method == "POST"
	input.context.body == "object"
}

# The host counts the session's requests in a window of window_seconds;
# the budget is scaled to that window (none reported: a minute).
default window := 60

window := input.context.window_seconds if input.context.window_seconds != 0

budget := max([floor((max_per_minute * window) / 60), 1])

over_rate_limit if input.context.requests_in_window >= budget
