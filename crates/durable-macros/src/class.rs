//! `#[durable_object]`: the class glue generated next to a class's struct.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{Item, spanned::Spanned};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !args.is_empty() {
        return Err(syn::Error::new(
            args.span(),
            "#[durable_object] takes no arguments: every handler of `DurableObject` is available to the class",
        ));
    }
    let item: Item = syn::parse2(item)?;
    let Item::Struct(strukt) = item else {
        return Err(syn::Error::new(
            item.span(),
            "#[durable_object] goes on the struct of an object class; callable methods go in an impl block marked #[rpc]",
        ));
    };
    if !strukt.generics.params.is_empty() || strukt.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            strukt.generics.span(),
            "a durable object class cannot be generic: every class needs one concrete name for its namespace",
        ));
    }
    let name = &strukt.ident;
    let vis = &strukt.vis;
    let class_name = name.to_string();
    let client = format_ident!("{}Client", name);
    let client_doc = format!(
        "The typed RPC client of [`{name}`]: `Stub<{name}>` dereferences to it, and `#[rpc]` gives it one method per public method."
    );
    Ok(quote! {
        #strukt

        #[doc = #client_doc]
        #[derive(Clone, Debug)]
        #vis struct #client {
            raw: ::durable_objects::__private::RawStub,
        }

        impl ::durable_objects::__private::RpcClient for #client {
            fn from_raw(raw: ::durable_objects::__private::RawStub) -> Self {
                Self { raw }
            }
            fn raw(&self) -> &::durable_objects::__private::RawStub {
                &self.raw
            }
        }

        impl ::durable_objects::__private::ObjectClass for #name {
            const CLASS_NAME: &'static str = #class_name;
            type Client = #client;
            fn dispatch_rpc(
                this: ::std::rc::Rc<Self>,
                call: ::durable_objects::__private::RpcInvocation,
            ) -> ::durable_objects::__private::LocalBoxFuture<
                ::durable_objects::Result<::durable_objects::__private::RpcValue>,
            > {
                // `#[rpc]` defines an inherent `__durable_rpc_dispatch`, which method
                // resolution prefers; without `#[rpc]` this trait's fallback answers.
                #[allow(unused_imports)]
                use ::durable_objects::__private::NoRpcMethods as _;
                this.__durable_rpc_dispatch(call)
            }
        }
    })
}
