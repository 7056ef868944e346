//! cam-client: parse, validate, run, report. The work lives in the library modules.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cam_client::cli::{Args, Config};
use cam_net::output;
use clap::Parser;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        // Whoever read our output went away: not a failure of ours (as ripgrep does it).
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            output::eprint_line(&format!("cam-client: error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.gen_key {
        cam_net::keys::generate_key_file(path)?;
        output::eprint_line(&format!(
            "cam-client: wrote a new key to {0}. Copy it to the viewer's machine (e.g. scp), then run \
             cam-viewer --key-file {0} there and cam-client --key-file {0} here.",
            path.display()
        ));
        return Ok(ExitCode::SUCCESS);
    }
    if args.list_cameras {
        return cam_client::source::camera_list::run();
    }
    if let Some(message) = &args.send_msg {
        return cam_client::sendmsg::run(message, args.viewer.as_deref());
    }
    let config = Config::from_args(args)?;
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = stop.clone();
    ctrlc::set_handler(move || on_signal.store(true, Ordering::Relaxed))?;
    let (summary, ok) = cam_client::driver::run(&config, stop)?;
    // A closed stdout is not an error: the summary had no reader, the run itself went well.
    output::print_line(&serde_json::to_string(&summary)?)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
