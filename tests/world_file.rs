//! World files are untrusted: every problem is a clear error naming the file, never a panic.

use kasagi::sim::{WorldDef, WorldFileError};

const GOOD: &str = r#"(
    name: "tiny",
    seed: 1,
    tick_hz: 30,
    map: (width: 100.0, height: 100.0),
    population: (npcs: 10, resources: 2, buildings: 1, players: 1),
)"#;

#[test]
fn shipped_worlds_load() {
    for path in ["assets/worlds/village.ron", "assets/worlds/village-10k.ron"] {
        let def = WorldDef::load(path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(def.tick_hz, 30);
    }
    let big = WorldDef::load("assets/worlds/village-10k.ron").unwrap();
    assert_eq!(big.population.total(), 10_000);
}

#[test]
fn a_good_file_parses_with_default_tuning() {
    let def = WorldDef::parse(GOOD, "tiny.ron").unwrap();
    assert_eq!(def.population.npcs, 10);
    assert_eq!(def.tuning, Default::default());
}

#[test]
fn a_missing_file_names_the_file() {
    let err = WorldDef::load("no/such/world.ron").unwrap_err();
    assert!(matches!(err, WorldFileError::Io { .. }));
    assert!(err.to_string().contains("no/such/world.ron"), "{err}");
}

#[test]
fn a_syntax_error_names_file_line_and_column() {
    let broken = GOOD.replace("tick_hz: 30,", "tick_hz: 30\n    oops,");
    let err = WorldDef::parse(&broken, "broken.ron").unwrap_err();
    match &err {
        WorldFileError::Syntax { line, .. } => assert_eq!(*line, 5, "{err}"),
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert!(err.to_string().starts_with("broken.ron:5:"), "{err}");
}

#[test]
fn unknown_fields_are_rejected() {
    let typo = GOOD.replace("seed: 1,", "seed: 1,\n    sead: 2,");
    let err = WorldDef::parse(&typo, "typo.ron").unwrap_err();
    assert!(err.to_string().contains("sead"), "{err}");
}

#[test]
fn out_of_range_values_name_the_field() {
    let cases = [
        ("tick_hz: 30", "tick_hz: 0", "tick_hz"),
        ("width: 100.0", "width: -5.0", "map.width"),
        ("npcs: 10", "npcs: 4000000", "population.npcs"),
        ("name: \"tiny\"", "name: \"../etc\"", "name"),
    ];
    for (from, to, field) in cases {
        let err = WorldDef::parse(&GOOD.replace(from, to), "bad.ron").unwrap_err();
        match &err {
            WorldFileError::Invalid { field: f, .. } => assert_eq!(*f, field, "{err}"),
            other => panic!("{to}: expected an invalid-value error, got {other:?}"),
        }
    }
}

#[test]
fn tuning_is_validated() {
    let bad = GOOD.replace(
        "population:",
        "tuning: (sated_at: 0.9, hungry_at: 0.5),\n    population:",
    );
    let err = WorldDef::parse(&bad, "t.ron").unwrap_err();
    assert!(err.to_string().contains("tuning.sated_at"), "{err}");
}

#[test]
fn arbitrary_text_never_panics() {
    let samples = [
        "",
        "(",
        "()",
        "((((((((((",
        "\u{0}\u{ffff}",
        "name: 1",
        &"[".repeat(10_000),
    ];
    for s in samples {
        assert!(WorldDef::parse(s, "junk.ron").is_err());
    }
}
