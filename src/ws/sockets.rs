//! How many sockets each client holds open on this server process: per address (its /64 for
//! IPv6, as the sign-in throttle counts), checked at the upgrade, and per account, checked at
//! `connection_init`. Each socket may run [`super::WsSettings::max_operations`] operations, and
//! each subscription among them reads the database again every half a minute or so and wakes
//! on every job event: without a limit on sockets, one account (or one address with many
//! accounts) opening thousands of them would keep the database pool busy for everyone.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use uuid::Uuid;

/// Who holds a socket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Holder {
    /// A client address, as [`crate::auth::throttle::client_key`] counts it.
    Address(String),
    Account(Uuid),
}

/// The open sockets of each holder.
#[derive(Debug, Default)]
pub struct Sockets {
    open: Mutex<HashMap<Holder, usize>>,
}

/// One socket counted for its holder until dropped.
#[derive(Debug)]
pub struct Slot {
    sockets: Arc<Sockets>,
    holder: Holder,
}

impl Sockets {
    /// A slot for one more socket of `holder`, unless it holds `max` already.
    pub fn take(self: &Arc<Self>, holder: Holder, max: usize) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(holder.clone()).or_default();
        if *count >= max {
            if *count == 0 {
                open.remove(&holder);
            }
            return None;
        }
        *count += 1;
        Some(Slot {
            sockets: self.clone(),
            holder,
        })
    }

    /// How many sockets `holder` has open.
    pub fn open(&self, holder: &Holder) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(holder).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.sockets.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.holder) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.holder);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_gets_at_most_max_slots_and_each_comes_back_when_dropped() {
        let sockets = Arc::new(Sockets::default());
        let ada = Holder::Account(Uuid::now_v7());
        let office = Holder::Address("203.0.113.7".to_owned());
        let first = sockets.take(ada.clone(), 2).expect("first");
        let second = sockets.take(ada.clone(), 2).expect("second");
        assert!(sockets.take(ada.clone(), 2).is_none(), "a third of two");
        assert!(
            sockets.take(office.clone(), 2).is_some(),
            "others are apart"
        );
        drop(first);
        assert_eq!(sockets.open(&ada), 1);
        let third = sockets.take(ada.clone(), 2).expect("room again");
        drop((second, third));
        assert_eq!(sockets.open(&ada), 0);
        assert!(
            sockets.open.lock().expect("lock").is_empty(),
            "nothing kept"
        );
        assert!(sockets.take(ada, 0).is_none());
        assert!(sockets.open.lock().expect("lock").is_empty());
    }
}
