use memory_storage_turso::migration::*;
#[tokio::main]
async fn main() {
    let path = std::env::args().nth(1).unwrap();
    let r = migrate_embeddings(
        &path,
        "",
        MigrationOptions {
            build_vector_index: false,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for p in &r.phases {
        println!("{} {:.2}s {}", p.phase, p.seconds, p.units);
    }
}
