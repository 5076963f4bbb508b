//! Hostile guest `other-world`: a well-formed component of a *different*
//! world (`evil:other/other`, exporting `run: func() -> string`), built with
//! wit-bindgen directly instead of the SDK. It exports neither `evaluate` nor
//! `describe` and imports nothing of Airlock's.
//!
//! The host must answer: a load error saying the component "does not
//! implement the policy world".

wit_bindgen::generate!({
    world: "other",
    path: "wit",
});

struct Other;

impl Guest for Other {
    fn run() -> String {
        "not a policy".to_string()
    }
}

export!(Other);
