//! `submit` (validate here, then create) and `delete`.

use std::io::Read;
use std::path::{Path, PathBuf};

use kube::api::{DeleteParams, PostParams};
use roiergasias_crd::{MAX_WORKFLOW_YAML_LEN, Workflow};
use roiergasias_engine::MAX_WORKFLOW_BYTES;

use super::connect::Target;
use super::wrap::{self, Naming};
use crate::cli::{Failure, display_name, invalid};

pub(crate) struct Request {
    pub file: PathBuf,
    pub name: Option<String>,
    pub generate_name: Option<String>,
    pub image: Option<String>,
}

impl Request {
    /// The Workflow to create, once the file passed the parser the operator uses.
    pub fn workflow(&self) -> Result<Workflow, Failure> {
        let text = read(&self.file)?;
        let stem = stem(&self.file);
        let naming = match (&self.name, &self.generate_name) {
            (Some(name), _) => Naming::Name(name.clone()),
            (None, Some(prefix)) => Naming::GenerateName(prefix.clone()),
            (None, None) => wrap::default_naming(&stem),
        };
        Ok(wrap::workflow(
            naming,
            &wrap::workflow_name(&stem),
            &text,
            self.image.as_deref(),
        ))
    }
}

fn stem(file: &Path) -> String {
    if file.as_os_str() == "-" {
        return "workflow".to_owned();
    }
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The file's text, checked as the operator checks it: `{{env:…}}` names may come from the
/// Job's environment, which this machine cannot see.
fn read(file: &Path) -> Result<String, Failure> {
    let name = display_name(file);
    let limit = MAX_WORKFLOW_BYTES as u64 + 1;
    let mut bytes = Vec::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().lock().take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    };
    read.map_err(|e| Failure::Invalid(format!("cannot read workflow {name}: {e}")))?;
    let text = roiergasias_engine::workflow_text(&bytes)
        .map_err(|e| Failure::Invalid(e.display_for(&name)))?;
    if text.len() > MAX_WORKFLOW_YAML_LEN as usize {
        return Err(Failure::Invalid(format!(
            "{name}: the workflow is larger than a Workflow resource holds ({} KiB)",
            MAX_WORKFLOW_YAML_LEN / 1024
        )));
    }
    roiergasias_engine::parse(text).map_err(|e| invalid(&name, &e, ", nothing was submitted"))?;
    Ok(text.to_owned())
}

/// Creates the Workflow; returns the name it got.
pub(crate) async fn create(target: &Target, workflow: &Workflow) -> Result<String, Failure> {
    let what = workflow
        .metadata
        .name
        .clone()
        .or_else(|| workflow.metadata.generate_name.clone().map(|p| p + "…"))
        .unwrap_or_default();
    let created = target
        .workflows()
        .create(&PostParams::default(), workflow)
        .await
        .map_err(|e| target.explain(&format!("creating workflow {what}"), &e))?;
    Ok(created.metadata.name.unwrap_or(what))
}

pub(crate) async fn delete(target: &Target, name: &str) -> Result<(), Failure> {
    target
        .workflows()
        .delete(name, &DeleteParams::background())
        .await
        .map_err(|e| target.explain(&format!("deleting workflow {name}"), &e))?;
    println!("workflow.batch.ankursoni.github.io/{name} deleted");
    Ok(())
}
