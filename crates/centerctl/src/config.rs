//! `centerctl config …`: checks the configuration file without touching
//! anything else.

use crate::cli::{Cli, ConfigCommand};

pub fn run(cli: &Cli, command: &ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Check => {
            let config = center_config::Config::load(&cli.config)?;
            if cli.json {
                let doc = serde_json::json!({
                    "config": config.source,
                    "state_dir": config.paths.state_dir,
                    "center_root": config.paths.center_root,
                    "bus_socket": config.bus.socket,
                });
                println!("{doc}");
            } else {
                println!("config {} is valid", config.source.display());
                println!("bus socket {}", config.bus.socket.display());
            }
            Ok(())
        }
    }
}
