//! What the examples share: where to send.

use rocketmq_mio::testing::MockBroker;

/// The name server in `NAMESRV_ADDR`, or an embedded broker made by `embedded` (kept alive by
/// the returned handle for as long as the example runs).
pub fn name_server(
    embedded: impl FnOnce() -> std::io::Result<MockBroker>,
) -> std::io::Result<(String, Option<MockBroker>)> {
    match std::env::var("NAMESRV_ADDR") {
        Ok(addr) if !addr.trim().is_empty() => Ok((addr, None)),
        _ => {
            let broker = embedded()?;
            println!(
                "no NAMESRV_ADDR: started an embedded MockBroker at {}",
                broker.namesrv_addr()
            );
            Ok((broker.namesrv_addr(), Some(broker)))
        }
    }
}
