//! OCI image layouts: name the image so `ctr images import` tags it, pack the layout into an archive,
//! and check an archive before handing it out.
//!
//! buildah writes `org.opencontainers.image.ref.name` only; `ctr images import` without `--base-name`
//! ignores a full reference there, and names an image from `io.containerd.image.name`.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail, ensure};
use serde_json::Value;

pub(crate) const CONTAINERD_NAME: &str = "io.containerd.image.name";
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// An index.json or manifest larger than this is not one of ours.
const MAX_JSON: u64 = 1 << 20;

/// Gives the one manifest of an index both name annotations.
pub(crate) fn name_index(index: &mut Value, name: &str) -> anyhow::Result<()> {
    let manifests = index
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .context("index.json has no manifests array")?;
    ensure!(
        manifests.len() == 1,
        "index.json lists {} manifests; one image per archive is expected",
        manifests.len()
    );
    let manifest = manifests[0]
        .as_object_mut()
        .context("index.json's manifest is not an object")?;
    let annotations = manifest
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()))
        .as_object_mut()
        .context("the manifest's annotations are not an object")?;
    annotations.insert(CONTAINERD_NAME.into(), Value::String(name.into()));
    annotations.insert(REF_NAME.into(), Value::String(name.into()));
    Ok(())
}

/// Rewrites `dir/index.json` with the name, then packs `dir` into `out` (written whole, then renamed).
pub(crate) fn pack(dir: &Path, name: &str, out: &Path) -> anyhow::Result<()> {
    let index_path = dir.join("index.json");
    let mut index: Value = serde_json::from_slice(
        &std::fs::read(&index_path).with_context(|| format!("reading {}", index_path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", index_path.display()))?;
    name_index(&mut index, name)?;
    std::fs::write(&index_path, serde_json::to_vec(&index)?)?;
    let tmp = out.with_extension("tar.partial");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    builder.mode(tar::HeaderMode::Deterministic);
    builder.append_path_with_name(dir.join("oci-layout"), "oci-layout")?;
    builder.append_path_with_name(&index_path, "index.json")?;
    builder.append_dir_all("blobs", dir.join("blobs"))?;
    builder.into_inner()?.into_inner()?.sync_all()?;
    std::fs::rename(&tmp, out)
        .with_context(|| format!("moving the archive to {}", out.display()))?;
    Ok(())
}

/// What a checked archive holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Checked {
    pub name: String,
    /// The manifest's digest: containerd's image target.
    pub digest: String,
    pub layers: usize,
}

/// Reads an archive and checks it is an OCI layout that `ctr images import` takes whole: the layout
/// version, one named manifest, and every blob it points to present with its stated size.
pub(crate) fn check_archive(path: &Path) -> anyhow::Result<Checked> {
    let entries = read_entries(path).with_context(|| format!("reading {}", path.display()))?;
    check_entries(&entries)
        .with_context(|| format!("{} is not a usable OCI archive", path.display()))
}

/// A tar's regular files: their sizes, and the contents of the small JSON ones.
struct Entries {
    sizes: HashMap<String, u64>,
    json: HashMap<String, Vec<u8>>,
}

fn read_entries(path: &Path) -> anyhow::Result<Entries> {
    let mut archive = tar::Archive::new(std::fs::File::open(path)?);
    let mut entries = Entries {
        sizes: HashMap::new(),
        json: HashMap::new(),
    };
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let size = entry.size();
        if size <= MAX_JSON {
            let mut bytes = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut bytes)?;
            entries.json.insert(name.clone(), bytes);
        }
        entries.sizes.insert(name, size);
    }
    Ok(entries)
}

fn check_entries(entries: &Entries) -> anyhow::Result<Checked> {
    let layout = json_entry(entries, "oci-layout")?;
    ensure!(
        layout.get("imageLayoutVersion").and_then(Value::as_str) == Some("1.0.0"),
        "oci-layout is not version 1.0.0: {layout}"
    );
    let index = json_entry(entries, "index.json")?;
    let manifests = index
        .get("manifests")
        .and_then(Value::as_array)
        .context("index.json has no manifests")?;
    let [descriptor] = manifests.as_slice() else {
        bail!("index.json lists {} manifests, not one", manifests.len());
    };
    let name = descriptor
        .pointer(&format!(
            "/annotations/{}",
            CONTAINERD_NAME.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .with_context(|| format!("the manifest has no {CONTAINERD_NAME} annotation"))?;
    ensure!(
        descriptor.get("mediaType").and_then(Value::as_str) == Some(MANIFEST_TYPE),
        "index.json's entry is not an image manifest"
    );
    let digest = blob(entries, descriptor)?;
    let manifest = json_entry(entries, &blob_path(&digest)?)?;
    blob(
        entries,
        manifest
            .get("config")
            .context("the manifest has no config")?,
    )?;
    let layers = manifest
        .get("layers")
        .and_then(Value::as_array)
        .context("the manifest has no layers")?;
    for layer in layers {
        blob(entries, layer)?;
    }
    Ok(Checked {
        name: name.to_string(),
        digest,
        layers: layers.len(),
    })
}

/// A descriptor's blob must be in the archive with the size the descriptor states.
fn blob(entries: &Entries, descriptor: &Value) -> anyhow::Result<String> {
    let digest = descriptor
        .get("digest")
        .and_then(Value::as_str)
        .context("a descriptor has no digest")?;
    let size = descriptor
        .get("size")
        .and_then(Value::as_u64)
        .context("a descriptor has no size")?;
    let path = blob_path(digest)?;
    match entries.sizes.get(&path) {
        Some(&actual) if actual == size => Ok(digest.to_string()),
        Some(actual) => bail!("{path} is {actual} bytes; its descriptor says {size}"),
        None => bail!("{path} is missing"),
    }
}

fn blob_path(digest: &str) -> anyhow::Result<String> {
    let hex = digest
        .strip_prefix("sha256:")
        .with_context(|| format!("{digest:?} is not a sha256 digest"))?;
    ensure!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{digest:?} is not a sha256 digest"
    );
    Ok(format!("blobs/sha256/{hex}"))
}

fn json_entry(entries: &Entries, name: &str) -> anyhow::Result<Value> {
    let bytes = entries
        .json
        .get(name)
        .with_context(|| format!("{name} is missing (or larger than {MAX_JSON} bytes)"))?;
    serde_json::from_slice(bytes).with_context(|| format!("{name} is not JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::key::file_digest;
    use serde_json::json;

    /// A one-layer layout as buildah writes it (ref.name only), with real digests.
    fn write_layout(dir: &Path) {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let put = |bytes: &[u8]| -> (String, usize) {
            let tmp = dir.join("blob.tmp");
            std::fs::write(&tmp, bytes).unwrap();
            let digest = file_digest(&tmp).unwrap();
            std::fs::rename(&tmp, blobs.join(&digest[7..])).unwrap();
            (digest, bytes.len())
        };
        let (layer, layer_size) = put(b"not really a tar, but sized");
        let (config, config_size) = put(br#"{"architecture":"amd64","os":"linux"}"#);
        let manifest = json!({"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": layer_size}]});
        let (manifest, manifest_size) = put(&serde_json::to_vec(&manifest).unwrap());
        let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": MANIFEST_TYPE, "digest": manifest,
            "size": manifest_size, "annotations": {REF_NAME: "localhost/x:1"}}]});
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    }

    #[test]
    fn packed_archive_is_named_for_containerd_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        write_layout(&layout);
        let out = dir.path().join("x.tar");
        pack(&layout, "localhost/roiergasias:0.2.0", &out).unwrap();
        let checked = check_archive(&out).unwrap();
        assert_eq!(checked.name, "localhost/roiergasias:0.2.0");
        assert_eq!(checked.layers, 1);
        let index: Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"][0]["digest"], checked.digest);
        assert_eq!(
            index["manifests"][0]["annotations"][REF_NAME],
            "localhost/roiergasias:0.2.0"
        );
        assert!(!dir.path().join("x.tar.partial").exists());
    }

    #[test]
    fn check_names_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        write_layout(&layout);
        let out = dir.path().join("x.tar");
        // Unnamed: buildah's own index.
        let mut builder = tar::Builder::new(std::fs::File::create(&out).unwrap());
        builder.append_dir_all(".", &layout).unwrap();
        builder.finish().unwrap();
        let err = format!("{:#}", check_archive(&out).unwrap_err());
        assert!(err.contains(CONTAINERD_NAME), "{err}");
        // Named, but a layer gone.
        pack(&layout, "localhost/x:1", &out).unwrap();
        let index: Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
        let manifest: Value = serde_json::from_slice(
            &std::fs::read(layout.join(blob_path(manifest_digest).unwrap())).unwrap(),
        )
        .unwrap();
        let layer = blob_path(manifest["layers"][0]["digest"].as_str().unwrap()).unwrap();
        std::fs::remove_file(layout.join(&layer)).unwrap();
        pack(&layout, "localhost/x:1", &out).unwrap();
        let err = format!("{:#}", check_archive(&out).unwrap_err());
        assert!(err.contains(&layer) && err.contains("missing"), "{err}");
    }

    #[test]
    fn naming_refuses_an_index_of_several_images() {
        let mut index = json!({"manifests": [{}, {}]});
        let err = name_index(&mut index, "x").unwrap_err().to_string();
        assert!(err.contains("2 manifests"), "{err}");
        assert!(name_index(&mut json!({}), "x").is_err());
        assert!(blob_path("sha256:../../etc/passwd").is_err());
    }
}
