//! `#[rpc]`: the dispatcher and the typed client methods generated from an impl block.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    FnArg, GenericArgument, ImplItem, ImplItemFn, ItemImpl, Pat, PathArguments, ReturnType, Type,
    Visibility,
};

/// Names a stub already uses, or that are handlers of `DurableObject`: an RPC method with one
/// of these names could never be called through a stub.
const RESERVED: &[(&str, &str)] = &[
    (
        "fetch",
        "it is the HTTP handler: implement it in `impl DurableObject`",
    ),
    (
        "alarm",
        "it is the alarm handler: implement it in `impl DurableObject`",
    ),
    (
        "web_socket_message",
        "it is a WebSocket handler: implement it in `impl DurableObject`",
    ),
    (
        "web_socket_close",
        "it is a WebSocket handler: implement it in `impl DurableObject`",
    ),
    (
        "web_socket_error",
        "it is a WebSocket handler: implement it in `impl DurableObject`",
    ),
    (
        "new",
        "it is the constructor: implement it in `impl DurableObject`",
    ),
    ("id", "`Stub::id` would hide it"),
    ("name", "`Stub::name` would hide it"),
    ("raw", "`Stub::raw` would hide it"),
    ("clone", "`Stub::clone` would hide it"),
];

/// One checked RPC method.
struct Method {
    ident: syn::Ident,
    docs: Vec<syn::Attribute>,
    vis: Visibility,
    arg_names: Vec<syn::Ident>,
    arg_types: Vec<Type>,
    output: Output,
}

enum Output {
    /// `-> T`, or nothing (`()`).
    Plain(Type),
    /// `-> Result<T>` or `-> Result<T, E>`.
    Fallible(Type),
}

impl Output {
    fn value_type(&self) -> &Type {
        match self {
            Output::Plain(ty) | Output::Fallible(ty) => ty,
        }
    }
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !args.is_empty() {
        return Err(syn::Error::new(args.span(), "#[rpc] takes no arguments"));
    }
    let mut block: ItemImpl = syn::parse2(item)?;
    if let Some((_, path, _)) = &block.trait_ {
        return Err(syn::Error::new(
            path.span(),
            "#[rpc] goes on an inherent impl block (`impl Counter { ... }`), not on a trait impl",
        ));
    }
    if !block.generics.params.is_empty() {
        return Err(syn::Error::new(
            block.generics.span(),
            "#[rpc] impl blocks cannot be generic: a durable object class has one concrete type",
        ));
    }
    let client = client_path(&block.self_ty)?;

    let mut methods = Vec::new();
    let mut errors: Option<syn::Error> = None;
    for item in &block.items {
        if let ImplItem::Fn(function) = item {
            if matches!(function.vis, Visibility::Inherited) {
                continue;
            }
            match check_method(function) {
                Ok(method) => methods.push(method),
                Err(err) => match &mut errors {
                    Some(all) => all.combine(err),
                    None => errors = Some(err),
                },
            }
        }
    }
    // The methods that are fine are still generated, so one bad method gives one error
    // instead of a cascade of "no method found" errors at every call site.
    let errors = errors.map(syn::Error::into_compile_error);

    let arms = methods.iter().map(dispatch_arm);
    let client_methods = methods.iter().map(client_method);
    let assertions = methods.iter().map(type_assertions);
    block.items.push(syn::parse_quote! {
        #[doc(hidden)]
        pub fn __durable_rpc_dispatch(
            self: ::std::rc::Rc<Self>,
            call: ::durable_objects::__private::RpcInvocation,
        ) -> ::durable_objects::__private::LocalBoxFuture<
            ::durable_objects::Result<::durable_objects::__private::RpcValue>,
        > {
            match call.method() {
                #(#arms)*
                _ => {
                    let error = call.unknown_method(<Self as ::durable_objects::__private::ObjectClass>::CLASS_NAME);
                    ::std::boxed::Box::pin(async move { ::std::result::Result::Err(error) })
                }
            }
        }
    });
    Ok(quote! {
        #block

        impl #client {
            #(#client_methods)*
        }

        #(#assertions)*

        #errors
    })
}

/// `Counter` → `CounterClient`, keeping any leading path.
fn client_path(self_ty: &Type) -> syn::Result<syn::Path> {
    let Type::Path(type_path) = self_ty else {
        return Err(syn::Error::new(
            self_ty.span(),
            "#[rpc] goes on `impl Name { ... }` where `Name` is a struct marked #[durable_object]",
        ));
    };
    let mut path = type_path.path.clone();
    let last = path
        .segments
        .last_mut()
        .ok_or_else(|| syn::Error::new(self_ty.span(), "#[rpc] needs a type name"))?;
    if !last.arguments.is_none() {
        return Err(syn::Error::new(
            last.arguments.span(),
            "a durable object class cannot be generic",
        ));
    }
    last.ident = format_ident!("{}Client", last.ident);
    Ok(path)
}

fn check_method(function: &ImplItemFn) -> syn::Result<Method> {
    let sig = &function.sig;
    let name = sig.ident.to_string();
    if let Some((_, why)) = RESERVED.iter().find(|(reserved, _)| *reserved == name) {
        return Err(syn::Error::new(
            sig.ident.span(),
            format!(
                "`{name}` cannot be an rpc method: {why}; rename the method or make it private"
            ),
        ));
    }
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span(),
            format!(
                "rpc method `{name}` must be `async fn`: a call through a stub always awaits its reply (or make the method private)"
            ),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            format!(
                "rpc method `{name}` cannot be generic: a stub must know the concrete argument and result types to encode the call"
            ),
        ));
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(receiver))
            if receiver.reference.is_some() && receiver.mutability.is_none() => {}
        Some(FnArg::Receiver(receiver)) if receiver.mutability.is_some() => {
            return Err(syn::Error::new(
                receiver.span(),
                format!(
                    "rpc method `{name}` must take `&self`, not `&mut self`: calls to an object interleave at awaits, so keep mutable state in `Cell` or `RefCell` fields"
                ),
            ));
        }
        other => {
            let span = other.map_or_else(|| sig.ident.span(), Spanned::span);
            return Err(syn::Error::new(
                span,
                format!("rpc method `{name}` must take `&self` as its first parameter"),
            ));
        }
    }
    let mut arg_names = Vec::new();
    let mut arg_types = Vec::new();
    for (index, input) in inputs.enumerate() {
        let FnArg::Typed(typed) = input else {
            unreachable!("only the first parameter can be a receiver");
        };
        match &*typed.ty {
            Type::Reference(reference) => {
                return Err(syn::Error::new(
                    reference.span(),
                    format!(
                        "rpc arguments are sent by value: take an owned type (such as `String` or `Vec<T>`) instead of `{}`",
                        quote!(#reference).to_string().replace("& ", "&")
                    ),
                ));
            }
            Type::ImplTrait(impl_trait) => {
                return Err(syn::Error::new(
                    impl_trait.span(),
                    format!(
                        "rpc method `{name}` cannot be generic: take a concrete type instead of `impl Trait`"
                    ),
                ));
            }
            _ => {}
        }
        let arg_name = match &*typed.pat {
            Pat::Ident(pat) if pat.subpat.is_none() => {
                format_ident!("{}", pat.ident, span = pat.ident.span())
            }
            _ => format_ident!("arg{}", index),
        };
        arg_names.push(arg_name);
        arg_types.push((*typed.ty).clone());
    }
    if arg_types.len() > 16 {
        return Err(syn::Error::new(
            sig.inputs.span(),
            "rpc methods take at most 16 arguments: group them in a struct",
        ));
    }
    let output = match &sig.output {
        ReturnType::Default => Output::Plain(syn::parse_quote!(())),
        ReturnType::Type(_, ty) => match result_ok_type(ty) {
            Some(ok) => Output::Fallible(ok),
            None => Output::Plain((**ty).clone()),
        },
    };
    if let Type::Reference(reference) = output.value_type() {
        return Err(syn::Error::new(
            reference.span(),
            "rpc results are sent by value: return an owned type",
        ));
    }
    Ok(Method {
        ident: sig.ident.clone(),
        docs: function
            .attrs
            .iter()
            .filter(|attr| attr.path().is_ident("doc"))
            .cloned()
            .collect(),
        vis: function.vis.clone(),
        arg_names,
        arg_types,
        output,
    })
}

/// `T` of a return type spelled `Result<T>` or `Result<T, E>` (any path ending in `Result`).
fn result_ok_type(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(ok) => Some(ok.clone()),
        _ => None,
    }
}

fn dispatch_arm(method: &Method) -> TokenStream {
    let ident = &method.ident;
    let name = ident.to_string();
    let names = &method.arg_names;
    let types = &method.arg_types;
    let value = method.output.value_type();
    let convert = match method.output {
        Output::Plain(_) => quote! { ::std::result::Result::Ok(returned) },
        Output::Fallible(_) => quote! {
            returned.map_err(::std::convert::Into::<::durable_objects::Error>::into)
        },
    };
    quote! {
        #name => {
            let (args, reply) = call.into_parts();
            ::std::boxed::Box::pin(async move {
                let (#(#names,)*): (#(#types,)*) = args.take()?;
                let returned = self.#ident(#(#names),*).await;
                let result: ::durable_objects::Result<#value> = #convert;
                reply.reply(result)
            })
        }
    }
}

fn client_method(method: &Method) -> TokenStream {
    let ident = &method.ident;
    let name = ident.to_string();
    let vis = &method.vis;
    let docs = &method.docs;
    let names = &method.arg_names;
    let types = &method.arg_types;
    let value = method.output.value_type();
    quote! {
        #(#docs)*
        #vis fn #ident(&self, #(#names: #types),*) -> ::durable_objects::__private::RpcCall<#value> {
            ::durable_objects::__private::RawStub::call(
                ::durable_objects::__private::RpcClient::raw(self),
                #name,
                (#(#names,)*),
            )
        }
    }
}

/// Checks, at each type's own span, that arguments and results can cross an RPC boundary, so
/// a type that cannot is reported where it is written.
fn type_assertions(method: &Method) -> TokenStream {
    let types = method.arg_types.iter().chain([method.output.value_type()]);
    let checks = types.map(|ty| {
        quote_spanned! {ty.span()=>
            ::durable_objects::__private::assert_rpc_type::<#ty>();
        }
    });
    quote! {
        const _: () = {
            #[allow(dead_code)]
            fn check() {
                #(#checks)*
            }
        };
    }
}
