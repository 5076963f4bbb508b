# github-mcp (policies/github-mcp/src/lib.rs): a coding agent's GitHub tools
# over MCP. Lists issues and reads files under README.md, src/ and docs/ of
# acme/shop, opens pull requests only from an agent/ branch, never merges;
# a pull request into a base other than main escalates to a human unless
# the request carries the human's approval. `input.context.args` holds the
# call's string arguments.
package airlock.github_mcp

session_methods := {
	"initialize",
	"notifications/initialized",
	"notifications/cancelled",
	"ping",
	"tools/list",
}

readable_files := {"README.md"}

readable_dirs := ["src/", "docs/"]

args := input.context.args

default decision := "deny"

decision := "allow" if {
	allow
	count(escalate) == 0
}

decision := "escalate" if {
	allow
	count(escalate) > 0
}

allow if {
	mcp
	input.context.mcp_method in session_methods
}

allow if tool == "get_me"

allow if {
	tool == "list_issues"
	allowed_repo
}

allow if {
	tool == "get_file_contents"
	allowed_repo
	readable(args.path)
}

allow if {
	tool == "create_pull_request"
	allowed_repo
	startswith(args.head, "agent/")
	args.head != "agent/"
	is_string(args.base)
}

# A request the rules allow that still needs a human.
escalate contains "a pull request into another base needs a human's approval" if {
	tool == "create_pull_request"
	args.base != "main"
	not input.context.approved
}

mcp if {
	input.service == "github-mcp"
	input.context.mcp
}

tool := input.context.tool if {
	mcp
	input.context.mcp_method == "tools/call"
}

allowed_repo if {
	args.owner == "acme"
	args.repo == "shop"
}

readable(path) if {
	clean(path)
	path in readable_files
}

readable(path) if {
	clean(path)
	some dir in readable_dirs
	startswith(path, dir)
	count(path) > count(dir)
}

clean(path) if {
	count({"", ".", ".."} & input.context.path_segments) == 0
	not contains(path, "\\")
}
