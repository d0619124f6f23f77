//! Parts 2 and 3 of the `persist` bench: what the stores hold and how fast
//! the writer gets ticks into them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use kasagi::persist::HistoryReply;
use kasagi_store::EMBEDDED_FILE_NAME;

use super::*;

/// `used_memory` from `INFO memory`, over a bare connection.
fn redis_used_memory(redis: &RedisServer) -> Option<u64> {
    let mut stream = TcpStream::connect(("127.0.0.1", redis.port())).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(b"INFO memory\r\n").ok()?;
    let mut reader = BufReader::new(stream);
    let mut header = String::new();
    reader.read_line(&mut header).ok()?;
    let len: usize = header.trim().strip_prefix('$')?.parse().ok()?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
}

/// What the stores hold after part 1, and one history read through each writer.
pub(super) fn footprint(def: &WorldDef, data: &TempDir, redis: &RedisServer, variants: &[Variant]) {
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    let ticks = variants[1].room.tick_count();
    let file = std::fs::metadata(data.path().join(EMBEDDED_FILE_NAME)).map_or(0, |m| m.len());
    println!(
        "## store footprint after {ticks} ticks of one room (nothing has expired yet; \
         snapshot TTL {} s, ops kept ≈ {})",
        Retention::default().snapshot_ttl_secs,
        Retention::default().ops_max_len,
    );
    println!();
    println!(
        "- embedded: redb file {:.0} MiB ({:.2} MiB per tick)",
        mib(file),
        mib(file) / ticks as f64
    );
    match redis_used_memory(redis) {
        Some(used) => println!(
            "- redis: used_memory {:.0} MiB ({:.2} MiB per tick)",
            mib(used),
            mib(used) / ticks as f64
        ),
        None => println!("- redis: used_memory not available"),
    }
    println!();
    println!("history read of the last {HISTORY_TICKS} ticks, on the writer thread:");
    println!();
    for v in &variants[1..3] {
        let Some(service) = &v.service else { continue };
        let (send, answer) = std::sync::mpsc::sync_channel(1);
        let reply: HistoryReply = Box::new(move |result| {
            let _ = send.send(result.map(|casts| casts.len()));
        });
        let to = v.room.tick_count();
        let started = Instant::now();
        let asked =
            service
                .handle()
                .history(&def.name, (to + 1).saturating_sub(HISTORY_TICKS), to, reply);
        let result = answer.recv_timeout(Duration::from_secs(120));
        let took = started.elapsed();
        match (asked, result) {
            (true, Ok(Ok(n))) => println!(
                "- {}: {n} ticks in {:.0} ms",
                v.name,
                took.as_secs_f64() * 1e3
            ),
            (asked, result) => println!("- {}: failed (asked: {asked}, {result:?})", v.name),
        }
    }
    println!();
}

struct Throughput {
    store: &'static str,
    mode: &'static str,
    ticks: u64,
    tick_secs: f64,
    total_secs: f64,
    stats: PersistSnapshot,
}

pub(super) fn writer_throughput(settings: &Settings, variants: &mut [Variant]) {
    let mut rows = Vec::new();
    for v in variants.iter_mut() {
        let Some(service) = &v.service else { continue };
        let handle = service.handle();

        // Unpaced: as fast as the room ticks.
        let before = service.stats().snapshot();
        let started = Instant::now();
        let mut ticking = Duration::ZERO;
        for _ in 0..settings.throughput_ticks {
            ticking += serve_tick(&mut v.room);
        }
        assert!(handle.flush(Duration::from_secs(120)), "flush timed out");
        let total_secs = started.elapsed().as_secs_f64();
        let mut stats = PersistSnapshot::default();
        add(&mut stats, before, service.stats().snapshot());
        rows.push(Throughput {
            store: v.name,
            mode: "unpaced",
            ticks: settings.throughput_ticks,
            tick_secs: ticking.as_secs_f64(),
            total_secs,
            stats,
        });

        // One store round trip per tick.
        let before = service.stats().snapshot();
        let started = Instant::now();
        let mut ticking = Duration::ZERO;
        for _ in 0..settings.round_trip_ticks {
            ticking += serve_tick(&mut v.room);
            assert!(handle.flush(Duration::from_secs(10)), "flush timed out");
        }
        let total_secs = started.elapsed().as_secs_f64();
        let mut stats = PersistSnapshot::default();
        add(&mut stats, before, service.stats().snapshot());
        rows.push(Throughput {
            store: v.name,
            mode: "flush every tick",
            ticks: settings.round_trip_ticks,
            tick_secs: ticking.as_secs_f64(),
            total_secs,
            stats,
        });
        eprintln!("persist bench: throughput of `{}` done", v.name);
    }

    println!("## writer throughput, village-10k, {CLIENTS} clients, unpaced");
    println!();
    println!(
        "| variant | mode | ticks | tick µs (mean) | persisted ticks/s | writes | coalesced ticks | \
         whole states | mean write µs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let s = &r.stats;
        println!(
            "| {} | {} | {} | {:.0} | {:.1} | {} | {} | {} | {:.0} |",
            r.store,
            r.mode,
            r.ticks,
            r.tick_secs * 1e6 / r.ticks as f64,
            s.persisted_ticks as f64 / r.total_secs,
            s.writes,
            s.coalesced_ticks,
            s.full_states,
            s.write_micros as f64 / s.writes.max(1) as f64,
        );
    }
    println!();
    println!(
        "(persisted ticks/s: persisted ticks over the time from the first tick until the \
         writer had written them all; mean write: encoding + store round trip)"
    );
    println!();
}
