# code-reviewer (policies/code-reviewer/src/lib.rs): reads code and pull
# requests and comments on them; never merges, not even by asking a merge
# bot.
package airlock.code_reviewer

reads := {"GET", "HEAD"}

comment_operations := {"pulls.comment", "issues.comment"}

merge_bot_commands := {
	"/merge", "/automerge", "/approve", "/lgtm",
	"bors r+", "@bors r+", "bors merge", "@bors merge",
	"@mergifyio queue", "@dependabot merge",
}

default decision := "deny"

decision := "allow" if {
	allow
	count(deny) == 0
}

allow if {
	input.service == "code"
	input.context.method in reads
}

allow if {
	input.service == "code"
	input.operation in comment_operations
	input.context.method == "POST"
	input.context.comment.text
	not input.context.comment.blank
}

deny contains "reviewers never merge" if input.operation == "pulls.merge"

deny contains "the comment contains a merge-bot command" if {
	input.operation in comment_operations
	input.context.method == "POST"
	some head in input.context.comment.heads
	head in merge_bot_commands
}
