//! The key schema. Braces are literal: `{world}` is a Redis cluster hash tag.

/// `snapshot:{<world>}:<tick>`
pub fn snapshot_key(world: &str, tick: u64) -> String {
    format!("snapshot:{{{world}}}:{tick}")
}

/// `full_state:{<world>}`
pub fn full_state_key(world: &str) -> String {
    format!("full_state:{{{world}}}")
}

/// `latest_tick:{<world>}`
pub fn latest_tick_key(world: &str) -> String {
    format!("latest_tick:{{{world}}}")
}

/// `room:{<world>}:ops`
pub fn ops_key(world: &str) -> String {
    format!("room:{{{world}}}:ops")
}

/// `room:{<world>}:channel`
pub fn channel_key(world: &str) -> String {
    format!("room:{{{world}}}:channel")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_schema() {
        assert_eq!(snapshot_key("village", 42), "snapshot:{village}:42");
        assert_eq!(full_state_key("village"), "full_state:{village}");
        assert_eq!(latest_tick_key("village"), "latest_tick:{village}");
        assert_eq!(ops_key("village"), "room:{village}:ops");
        assert_eq!(channel_key("village"), "room:{village}:channel");
    }
}
