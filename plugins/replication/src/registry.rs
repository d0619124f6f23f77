//! What replicates: the registry of components and entity kinds, and the `App` extension that fills it.
//!
//! Server and client register the same components in the same order; the
//! [`ReplicationRegistry::protocol_hash`] lets a handshake reject a client built
//! against a different registry before any state is exchanged.

use std::sync::Arc;

use bevy_app::App;
use bevy_ecs::component::Mutable;
use bevy_ecs::intern::Interned;
use bevy_ecs::prelude::*;
use bevy_ecs::schedule::ScheduleLabel;
use bevy_ecs::world::EntityWorldMut;
use bevy_reflect::Reflect;
use glam::Vec2;
use serde::Serialize;
use serde::de::DeserializeOwned;
use xxhash_rust::xxh3::Xxh3;

use crate::codec::{self, DecodeError};
use crate::fields::{FieldValue, visit_fields};
use crate::net_id::KindId;
use crate::server::collect;

/// Bumped whenever the wire format or the delivery contract changes (3:
/// chained deltas, which clients must answer with missing-baseline reports).
pub const PROTOCOL_VERSION: u32 = 3;

/// The most components one registry can hold (they are tracked in 64-bit masks).
pub const MAX_COMPONENTS: usize = 64;

/// Everything a component needs to be replicated: ECS component, serde for the
/// wire, `Reflect` for field-level change sets, `PartialEq` to skip non-changes.
pub trait ReplicatedComponent:
    Component<Mutability = Mutable> + Reflect + Serialize + DeserializeOwned + Clone + PartialEq
{
}

impl<C> ReplicatedComponent for C where
    C: Component<Mutability = Mutable> + Reflect + Serialize + DeserializeOwned + Clone + PartialEq
{
}

/// The index of a registered component, in registration order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComponentIndex(pub u8);

impl ComponentIndex {
    /// This component's bit in a component mask.
    pub const fn bit(self) -> u64 {
        1 << self.0
    }
}

/// Who may see a component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Visibility {
    /// Every client that sees the entity.
    Public,
    /// Only the entity's [`crate::Owner`].
    Private,
}

/// Writes a received value on the client: inserted when the entity lacks the
/// component, otherwise replaced in place. In place, an update is seen as
/// `Changed<C>` (as with bevy_replicon's default write) without Bevy's insert
/// path, which costs a bundle lookup per write and would re-fire `Insert`
/// hooks and observers on every update.
fn write<C: Component<Mutability = Mutable>>(entity: &mut EntityWorldMut, value: C) {
    match entity.get_mut::<C>() {
        Some(mut held) => *held = value,
        None => {
            entity.insert(value);
        }
    }
}

/// Decodes a component's bytes into `(path, value)` leaves, given the component name.
pub(crate) type DecodeFieldsFn = fn(&[u8], &str) -> Result<Vec<(String, FieldValue)>, DecodeError>;
/// Writes a position into an entity's position component.
pub(crate) type SetPositionFn = Arc<dyn Fn(&mut EntityWorldMut, Vec2) + Send + Sync>;

/// Type-erased operations on one registered component.
#[derive(Clone, Copy)]
pub(crate) struct ComponentFns {
    /// Decodes bytes and inserts the component, or replaces its value (see [`write`]).
    pub insert: fn(&mut EntityWorldMut, &[u8]) -> Result<(), DecodeError>,
    /// Removes the component.
    pub remove: fn(&mut EntityWorldMut),
    /// Decodes bytes into named leaf fields, for tools.
    pub fields: DecodeFieldsFn,
}

/// A registered component.
#[derive(Clone)]
pub struct ComponentInfo {
    /// The name used in field paths, e.g. `position` for `Position`.
    pub name: crate::change_set::ComponentName,
    /// The Rust type name, part of the protocol hash.
    pub type_name: &'static str,
    /// Who may see it.
    pub visibility: Visibility,
    pub(crate) fns: ComponentFns,
}

/// How the component that places entities in space is read and written.
#[derive(Clone)]
pub(crate) struct PositionFns {
    pub index: ComponentIndex,
    pub set: SetPositionFn,
}

/// Reads the position out of the position component `C` (server side).
#[derive(Resource)]
pub(crate) struct PositionGetter<C: Component>(pub fn(&C) -> Vec2);

/// The replicated components and entity kinds of an app.
#[derive(Resource, Default)]
pub struct ReplicationRegistry {
    components: Vec<ComponentInfo>,
    /// The bits of the owner-only components: every changed entity's rehash
    /// and every view's build ask, so it is kept rather than recomputed.
    private_mask: u64,
    kinds: Vec<String>,
    pub(crate) position: Option<PositionFns>,
    pub(crate) schedule: Option<Interned<dyn ScheduleLabel>>,
}

impl ReplicationRegistry {
    /// The registered components, indexed by [`ComponentIndex`].
    pub fn components(&self) -> &[ComponentInfo] {
        &self.components
    }

    /// The mask with every registered component's bit set.
    pub(crate) fn components_mask(&self) -> u64 {
        match self.components.len() {
            MAX_COMPONENTS => u64::MAX,
            n => (1 << n) - 1,
        }
    }

    /// The component at `index`, if registered.
    pub fn component(&self, index: ComponentIndex) -> Option<&ComponentInfo> {
        self.components.get(usize::from(index.0))
    }

    /// The index of the component named `name`.
    pub fn index_of(&self, name: &str) -> Option<ComponentIndex> {
        self.components
            .iter()
            .position(|c| &*c.name == name)
            .map(|i| ComponentIndex(i as u8))
    }

    /// The registered kind names, indexed by [`KindId`].
    pub fn kinds(&self) -> &[String] {
        &self.kinds
    }

    /// The name of a kind, or `"unknown"`.
    pub fn kind_name(&self, kind: KindId) -> &str {
        self.kinds
            .get(usize::from(kind.0))
            .map_or("unknown", String::as_str)
    }

    /// Whether any component is visible to its owner only.
    pub fn has_private_components(&self) -> bool {
        self.private_mask != 0
    }

    /// Mask of the components a client may see (the position excluded: it
    /// travels as a quantized position): the public ones, and the owner-only
    /// ones too for the entity's owner (`owner_view`).
    pub(crate) fn visible_mask(&self, owner_view: bool) -> u64 {
        let mut mask = self.components_mask();
        if !owner_view {
            mask &= !self.private_mask;
        }
        if let Some(p) = self.position_index() {
            mask &= !p.bit();
        }
        mask
    }

    /// The component that places entities in space, if one is registered.
    pub fn position_index(&self) -> Option<ComponentIndex> {
        self.position.as_ref().map(|p| p.index)
    }

    /// Decodes a component's bytes into its named leaf fields (for tools and JSON views).
    pub fn decode_fields(
        &self,
        index: ComponentIndex,
        bytes: &[u8],
    ) -> Result<Vec<(String, FieldValue)>, DecodeError> {
        let info = self
            .component(index)
            .ok_or(DecodeError::UnknownComponent(index.0))?;
        (info.fns.fields)(bytes, &info.name)
    }

    /// A hash of everything both ends must agree on: the protocol version, the
    /// components (name, type, visibility, order), the position component and the kinds.
    pub fn protocol_hash(&self) -> u64 {
        let mut h = Xxh3::new();
        h.update(&PROTOCOL_VERSION.to_le_bytes());
        for c in &self.components {
            h.update(c.name.as_bytes());
            h.update(&[0]);
            h.update(c.type_name.as_bytes());
            h.update(&[0, c.visibility as u8]);
        }
        h.update(&[0xff, self.position.as_ref().map_or(0xff, |p| p.index.0)]);
        for k in &self.kinds {
            h.update(k.as_bytes());
            h.update(&[0]);
        }
        h.digest()
    }

    fn register<C: ReplicatedComponent>(&mut self, visibility: Visibility) -> ComponentIndex {
        let type_name = std::any::type_name::<C>();
        if let Some(i) = self
            .components
            .iter()
            .position(|c| c.type_name == type_name)
        {
            return ComponentIndex(i as u8);
        }
        assert!(
            self.components.len() < MAX_COMPONENTS,
            "at most {MAX_COMPONENTS} components can be replicated"
        );
        if visibility == Visibility::Private {
            self.private_mask |= 1 << self.components.len();
        }
        self.components.push(ComponentInfo {
            name: snake_case(short_name(type_name)).into(),
            type_name,
            visibility,
            fns: ComponentFns {
                insert: |entity, bytes| {
                    let value: C = codec::decode_component(bytes)?;
                    write(entity, value);
                    Ok(())
                },
                remove: |entity| {
                    entity.remove::<C>();
                },
                fields: |bytes, name| {
                    let value: C = codec::decode_component(bytes)?;
                    let mut out = Vec::new();
                    let mut path = name.to_string();
                    visit_fields(value.as_partial_reflect(), &mut path, &mut |p, v| {
                        out.push((p.to_string(), v))
                    });
                    Ok(out)
                },
            },
        });
        ComponentIndex((self.components.len() - 1) as u8)
    }
}

/// Registers replicated components and kinds on an [`App`].
///
/// Add [`crate::ReplicationPlugin`] (server) or [`crate::client::ClientReplicationPlugin`]
/// first, then register the same components, in the same order, on both ends.
pub trait AppReplicateExt {
    /// Replicates `C` to every client that sees the entity.
    fn replicate<C: ReplicatedComponent>(&mut self) -> &mut Self;

    /// Replicates `C` only to the entity's [`crate::Owner`].
    fn replicate_private<C: ReplicatedComponent>(&mut self) -> &mut Self;

    /// Replicates `C` as the entity's position: the interest grid uses it, and
    /// change sets carry it quantized, as small deltas where that is smaller.
    fn replicate_position<C: ReplicatedComponent>(
        &mut self,
        get: fn(&C) -> Vec2,
        set: fn(Vec2) -> C,
    ) -> &mut Self;

    /// Registers an entity kind (`npcs`, `buildings`, …) and returns its id.
    fn replicate_kind(&mut self, name: &str) -> KindId;
}

impl AppReplicateExt for App {
    fn replicate<C: ReplicatedComponent>(&mut self) -> &mut Self {
        register::<C>(self, Visibility::Public);
        self
    }

    fn replicate_private<C: ReplicatedComponent>(&mut self) -> &mut Self {
        register::<C>(self, Visibility::Private);
        self
    }

    fn replicate_position<C: ReplicatedComponent>(
        &mut self,
        get: fn(&C) -> Vec2,
        set: fn(Vec2) -> C,
    ) -> &mut Self {
        let index = register::<C>(self, Visibility::Public);
        self.insert_resource(PositionGetter::<C>(get));
        let mut registry = self.world_mut().resource_mut::<ReplicationRegistry>();
        registry.position = Some(PositionFns {
            index,
            set: Arc::new(move |entity: &mut EntityWorldMut, v: Vec2| write(entity, set(v))),
        });
        self
    }

    fn replicate_kind(&mut self, name: &str) -> KindId {
        let mut registry = self.world_mut().resource_mut::<ReplicationRegistry>();
        if let Some(i) = registry.kinds.iter().position(|k| k == name) {
            return KindId(i as u16);
        }
        registry.kinds.push(name.to_string());
        KindId((registry.kinds.len() - 1) as u16)
    }
}

fn register<C: ReplicatedComponent>(app: &mut App, visibility: Visibility) -> ComponentIndex {
    let mut registry = app
        .world_mut()
        .get_resource_mut::<ReplicationRegistry>()
        .expect("add ReplicationPlugin or ClientReplicationPlugin before registering components");
    let index = registry.register::<C>(visibility);
    if let Some(schedule) = registry.schedule {
        collect::add_component_systems::<C>(app, schedule, index);
    }
    index
}

/// `Position` for `Position`, `ResourceNode` for `my_game::ResourceNode<T>`.
fn short_name(type_name: &str) -> &str {
    let base = type_name.split('<').next().unwrap_or(type_name);
    base.rsplit("::").next().unwrap_or(base)
}

/// `ResourceNode` → `resource_node`.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_snake_case_short_names() {
        assert_eq!(
            snake_case(short_name("my_game::sim::ResourceNode")),
            "resource_node"
        );
        assert_eq!(snake_case(short_name("a::Wrapper<b::Inner>")), "wrapper");
        assert_eq!(snake_case(short_name("Needs")), "needs");
    }
}
