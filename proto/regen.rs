//! Regenerates `src/lendfusion.v1.rs` from `lendfusion.proto` (run by scripts/regen-proto.sh,
//! which provides `PROTOC`). Usage: `regen-proto OUT_DIR`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .ok_or("usage: regen-proto OUT_DIR")?;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    prost_build::Config::new()
        .out_dir(&out)
        .compile_protos(&[dir.join("lendfusion.proto")], &[dir])?;
    Ok(())
}
