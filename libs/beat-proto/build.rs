//! Generates the protobuf and gRPC code from `proto/` with the vendored `protoc` (no system
//! install needed), plus one encoded file-descriptor set for server reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let files: Vec<std::path::PathBuf> = [
        "beat/common/v1/common.proto",
        "beat/wire/v2/wire.proto",
        "beat/gateway/v1/gateway.proto",
        "beat/keystore/v1/keystore.proto",
        "beat/consensus/v1/consensus.proto",
        "beat/state/v1/state.proto",
    ]
    .iter()
    .map(|f| root.join(f))
    .collect();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let mut config = tonic_prost_build::Config::new();
    if std::env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    }
    config.bytes(["."]);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("beat_descriptor.bin"))
        .compile_with_config(config, &files, &[root])?;
    Ok(())
}
