//! Compile-time behaviour of `#[durable_object]` and `#[rpc]`: accepted shapes compile and
//! run, misuse fails with the messages in `tests/ui/fail/*.stderr`.

#[test]
fn macro_misuse_is_a_clear_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
