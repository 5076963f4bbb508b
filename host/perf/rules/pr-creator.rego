# pr-creator (policies/pr-creator/src/lib.rs): reads code, creates feature
# branches and opens pull requests whose diff stays out of auth/, .ci/ and
# security/, changes at most 500 lines in at most 10 files, and leaves
# existing tests alone. The body's JSON fields and the diff's files come
# pre-read in the input (host/perf/src/decision/facts.rs).
package airlock.pr_creator

reads := {"GET", "HEAD"}

branch_fields := {"name", "from"}

pull_fields := {"title", "head", "base", "diff", "body"}

pull_required := {"title", "head", "base", "diff"}

forbidden_dirs := {"auth", ".ci", "security"}

protected_branches := {"main", "master"}

max_files := 10

max_changed_lines := 500

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
	input.operation == "branches.create"
	input.context.method == "POST"
	count(input.context.body_keys - branch_fields) == 0
	count(branch_fields - input.context.nonblank) == 0
}

allow if {
	input.service == "code"
	input.operation == "pulls.create"
	input.context.method == "POST"
	count(input.context.body_keys - pull_fields) == 0
	count(pull_required - input.context.nonblank) == 0
	input.context.diff.readable
	input.context.diff.files >= 1
	input.context.diff.files <= max_files
	input.context.diff.changed_lines <= max_changed_lines
}

short_branch_name := trim_prefix(input.context.branch_name, "refs/heads/")

deny contains "protected branch" if {
	input.operation == "branches.create"
	short_branch_name in protected_branches
}

deny contains "protected branch" if {
	input.operation == "branches.create"
	startswith(short_branch_name, "release")
}

deny contains "unsafe change" if {
	input.operation == "pulls.create"
	some unsafe in ["bad_path", "binary", "existing_test"]
	input.context.diff[unsafe]
}

deny contains "forbidden directory" if {
	input.operation == "pulls.create"
	some dir in input.context.diff.top_dirs
	dir in forbidden_dirs
}
