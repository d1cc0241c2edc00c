//! The environment an object or a front handler sees: namespaces by binding name, and vars.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use durable_core::{Error, ErrorKind, ObjectId, Result};

use crate::shared::{NamespaceShared, RuntimeShared};
use crate::stub::ObjectClass;
use crate::stub::{RawStub, Stub};

/// Bindings and variables, shared by every object and the front; cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Env {
    shared: Arc<RuntimeShared>,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bindings: Vec<_> = self.shared.bindings.keys().collect();
        bindings.sort();
        f.debug_struct("Env")
            .field("bindings", &bindings)
            .field("vars", &self.shared.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Env {
    /// What the runtime's parts share (for the testing toolkit and operator tools).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn shared(&self) -> &Arc<RuntimeShared> {
        &self.shared
    }

    pub(crate) fn new(shared: Arc<RuntimeShared>) -> Self {
        Self { shared }
    }

    /// The namespace bound as `binding`, typed by its class.
    ///
    /// Fails if no such binding exists, or if it binds another class than `T`.
    ///
    /// ```no_run
    /// # use durable_objects::prelude::*;
    /// # #[durable_object] pub struct Counter;
    /// # impl DurableObject for Counter { fn new(_: State, _: Env) -> Self { Counter } }
    /// # fn f(env: Env) -> Result<()> {
    /// let counters = env.namespace::<Counter>("COUNTER")?;
    /// let stub = counters.get_by_name("room-1");
    /// # Ok(()) }
    /// ```
    pub fn namespace<T: ObjectClass>(&self, binding: &str) -> Result<Namespace<T>> {
        let index = *self.shared.bindings.get(binding).ok_or_else(|| {
            let mut known: Vec<_> = self.shared.bindings.keys().map(String::as_str).collect();
            known.sort_unstable();
            Error::new(
                ErrorKind::NotFound,
                format!("no binding named {binding:?}; the bindings are {known:?}"),
            )
        })?;
        let ns = Arc::clone(&self.shared.namespaces[index as usize]);
        if ns.class_name != T::CLASS_NAME {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "binding {binding:?} is of class {}, not {}",
                    ns.class_name,
                    T::CLASS_NAME
                ),
            ));
        }
        Ok(Namespace {
            shared: Arc::clone(&self.shared),
            ns,
            _class: PhantomData,
        })
    }

    /// The runtime's wall clock: use it instead of the system clock, so tests can control time.
    pub fn clock(&self) -> &dyn durable_core::Clock {
        self.shared.clock.as_ref()
    }

    /// The variable `name`, if set.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.shared.vars.get(name).map(String::as_str)
    }

    /// All variables, ordered by name.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.shared
            .vars
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }
}

/// The objects of one class: makes ids and stubs. Cheap to clone, `Send + Sync`.
pub struct Namespace<T> {
    shared: Arc<RuntimeShared>,
    ns: Arc<NamespaceShared>,
    _class: PhantomData<fn() -> T>,
}

impl<T> Clone for Namespace<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            ns: Arc::clone(&self.ns),
            _class: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Namespace<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Namespace")
            .field("class", &self.ns.class_name)
            .finish()
    }
}

impl<T> Namespace<T> {
    /// What the runtime's parts share, and this namespace's own record.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn parts(&self) -> (&Arc<RuntimeShared>, &NamespaceShared) {
        (&self.shared, &self.ns)
    }
}

impl<T: ObjectClass> Namespace<T> {
    /// The id of the object called `name`: the same name always gives the same id.
    pub fn id_from_name(&self, name: &str) -> ObjectId {
        self.ns.key.id_from_name(name)
    }

    /// A new, random id, unlike any other.
    pub fn new_unique_id(&self) -> ObjectId {
        let mut base = [0u8; 16];
        getrandom::fill(&mut base).expect("the system random source works");
        self.ns.key.id_from_base(base)
    }

    /// Parses the 64-hex-digit form of an id of this namespace.
    ///
    /// Fails with [`ErrorKind::InvalidId`] when the string is malformed (the message says
    /// whether the length or a character is wrong) or was made by another namespace.
    pub fn id_from_string(&self, text: &str) -> Result<ObjectId> {
        Ok(self.ns.key.id_from_string(text)?)
    }

    /// A stub for the object `id`. The object is not created until a call arrives.
    ///
    /// An id of another namespace gives a stub whose calls all fail with
    /// [`ErrorKind::InvalidId`].
    pub fn get(&self, id: &ObjectId) -> Stub<T> {
        let raw = match self.ns.key.verify(id) {
            Ok(()) => RawStub::live(id.clone(), Arc::clone(&self.shared), self.ns.index),
            Err(err) => RawStub::broken(
                id.clone(),
                Error::from(err).context(format!("namespace of class {}", T::CLASS_NAME)),
            ),
        };
        Stub::from_raw(raw)
    }

    /// A stub for the object called `name`; `get(&id_from_name(name))`.
    pub fn get_by_name(&self, name: &str) -> Stub<T> {
        let id = self.id_from_name(name);
        Stub::from_raw(RawStub::live(id, Arc::clone(&self.shared), self.ns.index))
    }

    /// The class name of the namespace.
    pub fn class_name(&self) -> &'static str {
        T::CLASS_NAME
    }
}
