//! The attribute macros of durable-objects: `#[durable_object]` on a class's struct and
//! `#[rpc]` on the impl block of its callable methods.
//!
//! Architecture invariant: this crate depends on no crate of the workspace, and the code it
//! generates names only `::durable_objects::__private::…`, so the facade decides what the
//! generated code may touch.
#![warn(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

use proc_macro::TokenStream;

mod class;
mod rpc;

/// Marks a struct as a Durable Object class.
///
/// Generates the class glue: the class name, the typed client `<Name>Client` that
/// `Stub<Name>` dereferences to, and the link to the `#[rpc]` dispatcher. Write the behaviour
/// in `impl DurableObject for Name` and the callable methods in a `#[rpc] impl Name` block in
/// the same module.
///
/// The struct may not be generic, and the attribute takes no arguments.
#[proc_macro_attribute]
pub fn durable_object(args: TokenStream, item: TokenStream) -> TokenStream {
    class::expand(args.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Makes the `pub async fn` methods of an impl block callable through stubs.
///
/// Every `pub` (or `pub(crate)`, `pub(super)`) method becomes an RPC method and must be `async fn name(&self, ...)`, with
/// owned argument and result types that implement serde's `Serialize` and `DeserializeOwned`
/// and are `Send`. A method returns `Result<T>` (or `Result<T, E>` with `E: Into<Error>`) to
/// be able to fail, or a plain `T`. Methods without a `pub` stay ordinary helpers.
/// A stub's method has the same name and arguments and returns a future of `Result<T>`.
#[proc_macro_attribute]
pub fn rpc(args: TokenStream, item: TokenStream) -> TokenStream {
    rpc::expand(args.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
