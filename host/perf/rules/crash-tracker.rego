# crash-tracker (policies/crash-tracker/src/lib.rs): reads crash reports
# and stack traces on the crash-reporting service, nothing else.
package airlock.crash_tracker

reads := {"GET", "HEAD"}

default decision := "deny"

decision := "allow" if {
	input.service == "crash-reporting"
	input.context.method in reads
}
