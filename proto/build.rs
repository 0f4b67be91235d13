//! Compiles the .proto files with `protox` (pure Rust), so building needs no
//! system `protoc`. The descriptor set is also embedded for server reflection.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "quotad/v1/quota.proto",
        "quotad/v1/raft.proto",
        "quotad/v1/cluster.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out.join("quotad_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure().compile_fds(fds)?;

    // Envoy's rate limit service: descriptors only (its Rust types come
    // from envoy-types), for server reflection. See vendor/README.md.
    let envoy_rls = "envoy/service/ratelimit/v3/rls.proto";
    println!("cargo:rerun-if-changed=vendor");
    let envoy = protox::compile([envoy_rls], ["vendor"])?;
    std::fs::write(
        out.join("envoy_rls_descriptor.bin"),
        prost::Message::encode_to_vec(&envoy),
    )?;
    Ok(())
}
