#!/usr/bin/env python3
"""Write the pr-creator demo requests in this directory.

    python3 policies/pr-creator/requests/generate.py

Each file is one request for `airlock policy eval` / the CLI demo. The diffs
are built here rather than by hand so that every hunk header counts its lines
correctly (a diff that lies about its counts is denied as unreadable, which
is not what these demos are about).
"""

import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent

PRINCIPAL = {
    "agent": "pr-bot-1",
    "role": "pr-creator",
    "session": "s-1",
    "workflow": "wf-1",
}


def hunk(old_start, new_start, lines, section=""):
    """One hunk from lines that start with ' ', '-' or '+'."""
    old = sum(1 for l in lines if l[0] in " -")
    new = sum(1 for l in lines if l[0] in " +")
    header = f"@@ -{old_start},{old} +{new_start},{new} @@"
    if section:
        header += " " + section
    return [header] + lines


def modify(path, hunks, index="3f2a1c4..9b7e0d2"):
    lines = [f"diff --git a/{path} b/{path}", f"index {index} 100644", f"--- a/{path}", f"+++ b/{path}"]
    for h in hunks:
        lines += h
    return "\n".join(lines) + "\n"


def add(path, content, index="0000000..5e1c309"):
    lines = [
        f"diff --git a/{path} b/{path}",
        "new file mode 100644",
        f"index {index}",
        "--- /dev/null",
        f"+++ b/{path}",
    ]
    lines += hunk(0, 1, ["+" + l for l in content])
    return "\n".join(lines) + "\n"


def small_change():
    """Fix the pager in src/lib.rs: 8 lines removed, 12 added (20 changed)."""
    return modify(
        "src/lib.rs",
        [
            hunk(
                12,
                12,
                [
                    " ",
                    " impl Pager {",
                    "     /// The items on page `page` (0-based).",
                    "-    pub fn page(&self, page: usize) -> &[Item] {",
                    "-        let start = page * self.per_page + 1;",
                    "-        let end = start + self.per_page;",
                    "-        &self.items[start..end]",
                    "-    }",
                    "-",
                    "-    pub fn pages(&self) -> usize {",
                    "-        self.items.len() / self.per_page",
                    "+    pub fn page(&self, page: usize) -> &[Item] {",
                    "+        let start = page.saturating_mul(self.per_page);",
                    "+        if start >= self.items.len() {",
                    "+            return &[];",
                    "+        }",
                    "+        let end = (start + self.per_page).min(self.items.len());",
                    "+        &self.items[start..end]",
                    "+    }",
                    "+",
                    "+    /// How many pages there are; a partial last page counts.",
                    "+    pub fn pages(&self) -> usize {",
                    "+        self.items.len().div_ceil(self.per_page)",
                    "     }",
                    " }",
                ],
                "pub struct Pager {",
            )
        ],
    )


def touches_auth():
    """Skip the password check in debug builds: a change to auth/login.rs."""
    return modify(
        "auth/login.rs",
        [
            hunk(
                40,
                40,
                [
                    "     let user = users::find(&req.username)?;",
                    "-    if !verify_password(&user, &req.password)? {",
                    "+    if !verify_password(&user, &req.password)? && !cfg!(debug_assertions) {",
                    "         return Err(AuthError::BadCredentials);",
                    "     }",
                ],
                "pub fn login(req: &LoginRequest) -> Result<Session, AuthError> {",
            )
        ],
        index="5d1e2aa..c0ffee1",
    )


def too_large():
    """A generated lookup table of 501 lines: one over the 500-line limit."""
    table = ["pub static CRC_TABLE: [u32; 499] = ["]
    table += [f"    0x{(i * 2654435761) % 2**32:08x}," for i in range(499)]
    table += ["];"]
    return add("src/crc_table.rs", table)


def modifies_test():
    """The pager fix plus a loosened assertion in an existing test."""
    test = modify(
        "tests/api_test.rs",
        [
            hunk(
                20,
                20,
                [
                    "     let pager = Pager::new(items(25), 10);",
                    "     assert_eq!(pager.pages(), 3);",
                    "-    assert_eq!(pager.page(2).len(), 5);",
                    "+    assert!(pager.page(2).len() <= 10);",
                    " }",
                ],
                "fn last_page_is_partial() {",
            )
        ],
        index="1a2b3c4..4c3b2a1",
    )
    return small_change() + test


def adds_test():
    """The pager fix plus a new test file."""
    return small_change() + add(
        "tests/pager_test.rs",
        [
            "use api::Pager;",
            "",
            "#[test]",
            "fn page_past_the_end_is_empty() {",
            "    let pager = Pager::new((0..25).collect(), 10);",
            "    assert!(pager.page(3).is_empty());",
            "    assert_eq!(pager.page(2).len(), 5);",
            "}",
        ],
    )


def pull_body(title, head, diff):
    return json.dumps({"title": title, "head": head, "base": "main", "diff": diff})


def pull_request(title, head, diff):
    return {
        "principal": PRINCIPAL,
        "action": {
            "service": "code",
            "operation": "pulls.create",
            "params": {"owner": "acme", "repo": "api"},
            "method": "POST",
            "path": "/repos/acme/api/pulls",
            "query": {},
            "headers": {"content-type": "application/json"},
            "body": pull_body(title, head, diff),
        },
    }


REQUESTS = {
    "small-change.json": ("Fix off-by-one in Pager::page", "fix-pager", small_change),
    "touches-auth.json": ("Skip password check in debug builds", "dev-login", touches_auth),
    "too-large.json": ("Add a CRC lookup table", "crc-table", too_large),
    "modifies-test.json": ("Fix pager and its test", "fix-pager-test", modifies_test),
}


def main():
    for name, (title, head, diff) in REQUESTS.items():
        text = json.dumps(pull_request(title, head, diff()), indent=2) + "\n"
        (HERE / name).write_text(text)
        print(f"wrote {name}")


if __name__ == "__main__":
    main()
