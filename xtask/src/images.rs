//! `cargo xtask images`: builds one image per service binary from its `services/<binary>/Dockerfile`
//! (`colormesh/<binary>:<tag>`) and makes them available to a cluster: loaded into kind or a K3s
//! container, or pushed to a registry for EKS.

use std::path::Path;

use anyhow::bail;
use clap::Args;

use crate::command::{CommandLine, Step, run_plan};
use crate::tools::{Tool, require};

/// The binaries that run in a cluster, one image each, built from `services/<binary>/Dockerfile`.
pub(crate) const SERVICE_BINARIES: [&str; 5] = [
    "colorteller",
    "colorgateway",
    "tcpecho",
    "echo",
    "gateway-proxy",
];

/// The image repository prefix; the manifests name `colormesh/<binary>:latest`.
pub(crate) const IMAGE_PREFIX: &str = "colormesh";
pub(crate) const DEFAULT_TAG: &str = "latest";
/// A service's Dockerfile, relative to the repository root, which is also the build context.
pub(crate) fn dockerfile(binary: &str) -> String {
    format!("services/{binary}/Dockerfile")
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub(crate) struct ImagesArgs {
    /// Tag of every image.
    #[arg(long, default_value = DEFAULT_TAG)]
    pub(crate) tag: String,
    /// Load the images into this kind cluster (`kind load docker-image`).
    #[arg(long, value_name = "CLUSTER")]
    pub(crate) load_kind: Option<String>,
    /// Tag the images as REGISTRY/colormesh/<binary>:<tag> and push them (log in first, e.g.
    /// `aws ecr get-login-password | docker login --username AWS --password-stdin REGISTRY`).
    #[arg(long, value_name = "REGISTRY")]
    pub(crate) push: Option<String>,
    /// Import the images into the containerd of this K3s container (`ctr images import`).
    #[arg(long, value_name = "CONTAINER")]
    pub(crate) load_k3s: Option<String>,
}

/// `colormesh/<binary>:<tag>`, or `<registry>/colormesh/<binary>:<tag>` for a pushed image.
pub(crate) fn image_ref(registry: Option<&str>, binary: &str, tag: &str) -> String {
    match registry {
        Some(registry) => format!(
            "{}/{IMAGE_PREFIX}/{binary}:{tag}",
            registry.trim_end_matches('/')
        ),
        None => format!("{IMAGE_PREFIX}/{binary}:{tag}"),
    }
}

/// Runs `cargo xtask images`.
pub(crate) fn images(root: &Path, args: &ImagesArgs) -> anyhow::Result<()> {
    validate(args)?;
    let mut tools = vec![Tool::Docker];
    if args.load_kind.is_some() {
        tools.push(Tool::Kind);
    }
    require(&tools)?;
    run_plan(&images_plan(root, args))
}

/// Build every image, then push and load them as asked.
pub(crate) fn images_plan(root: &Path, args: &ImagesArgs) -> Vec<Step> {
    let local: Vec<String> = SERVICE_BINARIES
        .iter()
        .map(|binary| image_ref(None, binary, &args.tag))
        .collect();
    let mut plan: Vec<Step> = SERVICE_BINARIES
        .iter()
        .zip(&local)
        .map(|(binary, image)| {
            Step::Run(
                CommandLine::new("docker")
                    .args(["build", "--file"])
                    .arg(root.join(dockerfile(binary)).display().to_string())
                    .args(["--tag", image])
                    .arg(root.display().to_string())
                    // The Dockerfile uses cache mounts, a BuildKit feature.
                    .env("DOCKER_BUILDKIT", "1"),
            )
        })
        .collect();
    if let Some(registry) = &args.push {
        for (binary, image) in SERVICE_BINARIES.iter().zip(&local) {
            let remote = image_ref(Some(registry), binary, &args.tag);
            plan.push(Step::Run(
                CommandLine::new("docker").args(["tag", image, &remote]),
            ));
            plan.push(Step::Run(
                CommandLine::new("docker").args(["push", &remote]),
            ));
        }
    }
    if let Some(cluster) = &args.load_kind {
        plan.push(Step::Run(
            CommandLine::new("kind")
                .args(["load", "docker-image"])
                .args(&local)
                .args(["--name", cluster]),
        ));
    }
    if let Some(container) = &args.load_k3s {
        // Kubernetes' images live in containerd's `k8s.io` namespace; one archive holds them all.
        plan.push(Step::Pipe {
            producer: CommandLine::new("docker").arg("save").args(&local),
            consumer: CommandLine::new("docker").args([
                "exec", "-i", container, "ctr", "-n", "k8s.io", "images", "import", "-",
            ]),
        });
    }
    plan
}

fn validate(args: &ImagesArgs) -> anyhow::Result<()> {
    validate_tag(&args.tag)?;
    if let Some(registry) = &args.push {
        validate_registry("--push", registry)?;
    }
    for (flag, value) in [
        ("--load-kind", &args.load_kind),
        ("--load-k3s", &args.load_k3s),
    ] {
        if let Some(value) = value
            && (value.is_empty() || value.starts_with('-') || value.contains(char::is_whitespace))
        {
            bail!("{flag} {value:?}: not a cluster or container name");
        }
    }
    Ok(())
}

/// A Docker tag: up to 128 of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
pub(crate) fn validate_tag(tag: &str) -> anyhow::Result<()> {
    let valid = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        bail!("--tag {tag:?}: a Docker tag is up to 128 letters, digits, '_', '.' or '-'");
    }
    Ok(())
}

/// A registry host with an optional port and path, such as
/// `123456789012.dkr.ecr.us-west-2.amazonaws.com` or `ghcr.io/me`.
pub(crate) fn validate_registry(flag: &str, registry: &str) -> anyhow::Result<()> {
    let trimmed = registry.trim_end_matches('/');
    let valid = !trimmed.is_empty()
        && !trimmed.contains("://")
        && !trimmed.starts_with(['/', '-'])
        && trimmed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '/'));
    if !valid {
        bail!(
            "{flag} {registry:?}: expected a registry host and optional path without a scheme, \
             such as 123456789012.dkr.ecr.us-west-2.amazonaws.com"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(tag: &str) -> ImagesArgs {
        ImagesArgs {
            tag: tag.to_owned(),
            load_kind: None,
            push: None,
            load_k3s: None,
        }
    }

    fn command(step: &Step) -> &CommandLine {
        match step {
            Step::Run(command) => command,
            Step::Pipe { .. } => panic!("unexpected pipe: {step}"),
        }
    }

    #[test]
    fn image_refs_follow_the_shared_naming() {
        assert_eq!(
            image_ref(None, "colorteller", "latest"),
            "colormesh/colorteller:latest"
        );
        assert_eq!(
            image_ref(Some("1234.dkr.ecr.us-west-2.amazonaws.com/"), "echo", "v2"),
            "1234.dkr.ecr.us-west-2.amazonaws.com/colormesh/echo:v2"
        );
    }

    #[test]
    fn builds_one_image_per_binary_from_its_own_dockerfile() {
        let plan = images_plan(Path::new("/repo"), &args("latest"));
        assert_eq!(plan.len(), SERVICE_BINARIES.len());
        for (step, binary) in plan.iter().zip(SERVICE_BINARIES) {
            let command = command(step);
            assert_eq!(command.program, "docker");
            assert_eq!(
                command.args,
                [
                    "build",
                    "--file",
                    &format!("/repo/services/{binary}/Dockerfile"),
                    "--tag",
                    &format!("colormesh/{binary}:latest"),
                    "/repo"
                ]
            );
            assert_eq!(command.env, [("DOCKER_BUILDKIT".into(), "1".into())]);
        }
    }

    #[test]
    fn every_binary_has_a_dockerfile_that_builds_and_runs_it_as_a_numeric_non_root_user() {
        let root = crate::workspace_root();
        for binary in SERVICE_BINARIES {
            let path = dockerfile(binary);
            let text =
                std::fs::read_to_string(root.join(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(
                text.contains(&format!("-p {binary}")),
                "{path} does not build -p {binary}"
            );
            assert!(
                text.contains(&format!("ENTRYPOINT [\"/usr/local/bin/{binary}\"]")),
                "{path}: no entrypoint for {binary}"
            );
            // The kubelet can only check `runAsNonRoot` against a numeric user.
            assert!(
                text.contains("USER 65532:65532"),
                "{path}: USER must be numeric"
            );
        }
    }

    #[test]
    fn push_tags_each_image_for_the_registry_then_pushes_it() {
        let mut push = args("v1");
        push.push = Some("ghcr.io/me".into());
        let plan = images_plan(Path::new("/repo"), &push);
        let after_builds = &plan[SERVICE_BINARIES.len()..];
        assert_eq!(after_builds.len(), 2 * SERVICE_BINARIES.len());
        for (pair, binary) in after_builds.chunks(2).zip(SERVICE_BINARIES) {
            let remote = format!("ghcr.io/me/colormesh/{binary}:v1");
            assert_eq!(
                command(&pair[0]).args,
                ["tag", &format!("colormesh/{binary}:v1"), &remote]
            );
            assert_eq!(command(&pair[1]).args, ["push", &remote]);
        }
    }

    #[test]
    fn load_kind_loads_every_image_into_the_named_cluster_after_the_builds() {
        let mut load = args("latest");
        load.load_kind = Some("colormesh".into());
        let plan = images_plan(Path::new("/repo"), &load);
        let last = command(plan.last().unwrap());
        assert_eq!(last.program, "kind");
        let mut expected = vec!["load".to_owned(), "docker-image".to_owned()];
        expected.extend(SERVICE_BINARIES.map(|b| format!("colormesh/{b}:latest")));
        expected.extend(["--name".to_owned(), "colormesh".to_owned()]);
        assert_eq!(last.args, expected);
    }

    #[test]
    fn load_k3s_pipes_docker_save_into_ctr_import_in_the_container() {
        let mut load = args("dev");
        load.load_k3s = Some("k3s-abc".into());
        let plan = images_plan(Path::new("/repo"), &load);
        let Some(Step::Pipe { producer, consumer }) = plan.last() else {
            panic!("last step is not a pipe: {plan:?}");
        };
        let mut save = vec!["save".to_owned()];
        save.extend(SERVICE_BINARIES.map(|b| format!("colormesh/{b}:dev")));
        assert_eq!(producer.program, "docker");
        assert_eq!(producer.args, save);
        assert_eq!(
            consumer.to_string(),
            "docker exec -i k3s-abc ctr -n k8s.io images import -"
        );
    }

    #[test]
    fn bad_tags_registries_and_names_are_rejected_naming_the_flag() {
        for tag in ["", "-x", "a b", "a:b", &"x".repeat(129)] {
            let error = validate(&args(tag)).unwrap_err();
            assert!(error.to_string().starts_with("--tag "), "{tag:?}: {error}");
        }
        validate(&args("v1.2_3-rc")).unwrap();

        let mut push = args("latest");
        push.push = Some("https://ghcr.io".into());
        assert!(
            validate(&push)
                .unwrap_err()
                .to_string()
                .starts_with("--push \"https://ghcr.io\"")
        );
        push.push = Some("localhost:5000/team".into());
        validate(&push).unwrap();

        let mut load = args("latest");
        load.load_k3s = Some("--rm".into());
        let error = validate(&load).unwrap_err();
        assert!(
            error.to_string().starts_with("--load-k3s \"--rm\""),
            "{error}"
        );
    }
}
