//! Where the injected-parameters cell goes (prepare-only, no kernel needed), and inspect.

use rota_notebook::execute::{RunOutcome, RunRequest};
use rota_notebook::params::{Param, Params};
use tokio_util::sync::CancellationToken;

use crate::util::{cells, data, read, source, tags, validate};

async fn prepare(input: &str, params: Params) -> (serde_json::Value, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.ipynb");
    let mut req = RunRequest::new(data(input), &out, crate::util::host());
    req.params = params;
    req.prepare_only = true;
    let mut warnings = Vec::new();
    let report = rota_notebook::execute::run(&req, &CancellationToken::new(), &mut |p| {
        if let rota_notebook::execute::Progress::Warning(w) = p {
            warnings.push(w);
        }
    })
    .await
    .expect("prepares");
    assert_eq!(report.outcome, RunOutcome::Prepared);
    validate(&out);
    (read(&out), warnings)
}

fn one(name: &str, v: Param) -> Params {
    let mut p = Params::default();
    p.set(name, v);
    p
}

#[tokio::test]
async fn injected_cell_goes_right_after_the_parameters_cell() {
    let (nb, warnings) = prepare("params.ipynb", one("alpha", Param::Float(0.9))).await;
    let c = cells(&nb);
    assert_eq!(c.len(), 4);
    assert_eq!(tags(&c[1]), vec!["parameters"]);
    assert_eq!(tags(&c[2]), vec!["injected-parameters"]);
    assert_eq!(source(&c[2]), "# Parameters\nalpha = 0.9\n");
    assert_eq!(nb["metadata"]["papermill"]["parameters"]["alpha"], 0.9);
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[tokio::test]
async fn without_parameters_cell_injects_at_top_and_warns() {
    let (nb, warnings) = prepare("no_params.ipynb", one("x", Param::Int(5))).await;
    let c = cells(&nb);
    assert_eq!(c.len(), 3);
    assert_eq!(tags(&c[0]), vec!["injected-parameters"]);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("does not contain a cell with tag 'parameters'"))
    );
    assert!(warnings.iter().any(|w| w == "Passed unknown parameter: x"));
}

#[tokio::test]
async fn previous_injected_cell_is_replaced_and_old_error_cells_removed() {
    let (nb, _) = prepare("reinjected.ipynb", one("a", Param::Int(3))).await;
    let c = cells(&nb);
    assert_eq!(
        c.len(),
        3,
        "old banner removed, injected cell replaced in place"
    );
    assert_eq!(tags(&c[1]), vec!["injected-parameters"]);
    assert_eq!(source(&c[1]), "# Parameters\na = 3\n");
}

#[tokio::test]
async fn no_parameters_means_no_injected_cell() {
    let (nb, _) = prepare("params.ipynb", Params::default()).await;
    assert!(
        cells(&nb)
            .iter()
            .all(|c| !tags(c).contains(&"injected-parameters".to_string()))
    );
    assert!(
        nb["metadata"]["papermill"]["input_path"]
            .as_str()
            .is_some_and(|p| p.ends_with("params.ipynb"))
    );
}

#[tokio::test]
async fn bash_and_r_notebooks_get_their_own_syntax() {
    let mut p = Params::default();
    p.set("n", Param::Int(2));
    p.set("s", Param::Str("a b".into()));
    let (nb, _) = prepare("bash.ipynb", p.clone()).await;
    assert_eq!(source(&cells(&nb)[1]), "# Parameters\nn=2\ns='a b'\n");
    let (nb, _) = prepare("r.ipynb", p).await;
    assert_eq!(source(&cells(&nb)[1]), "# Parameters\nn = 2\ns = \"a b\"\n");
}

#[test]
fn inspect_infers_names_types_defaults_and_help() {
    let nb = rota_notebook::document::load(&data("params.ipynb")).expect("loads");
    let (params, _) = rota_notebook::inspect::infer(&nb);
    let got: Vec<_> = params
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.inferred_type_name.as_str(),
                p.default.as_str(),
                p.help.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("alpha", "None", "0.1", "learning rate"),
            ("name", "str", "'x'", "who"),
            ("n", "None", "3", ""),
            ("dry_run", "None", "False", ""),
        ]
    );
}

#[test]
fn inspect_handles_multiline_values_and_type_comments() {
    let src = "x = [\n  1,  # one\n  2,\n]  # the list\ny = 1  # type: int the y\nz == 3\n";
    let (params, warnings) = rota_notebook::inspect::infer_python(src);
    assert_eq!(params.len(), 2);
    assert_eq!(params[0].default, "[1,2,]");
    assert_eq!(params[0].help, "the list");
    assert_eq!(params[1].inferred_type_name, "int");
    assert_eq!(params[1].help, "the y");
    assert_eq!(warnings.len(), 1);
}
