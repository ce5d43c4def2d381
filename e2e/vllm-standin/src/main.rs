//! `kubegrid-vllm-standin serve MODEL …`: the TEST STAND-IN for `vllm serve` (see the
//! library's header). Never part of the product.

use kubegrid_vllm_standin::{Options, load, server};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = Options::parse(&args).unwrap_or_else(|e| {
        eprintln!("kubegrid-vllm-standin: {e}");
        std::process::exit(2);
    });
    let loaded = load(&opts.model).unwrap_or_else(|e| {
        eprintln!("kubegrid-vllm-standin (TEST STAND-IN for vLLM): cannot load weights: {e}");
        std::process::exit(1);
    });
    eprintln!(
        "kubegrid-vllm-standin (TEST STAND-IN for vLLM): loaded {} files ({} bytes) of commit {} from {}, each sha256 checked",
        loaded.files,
        loaded.bytes,
        loaded.commit,
        opts.model.display()
    );
    let (addr, _served) = server::start(opts.listen, opts.serving.clone())
        .await
        .unwrap_or_else(|e| {
            eprintln!("kubegrid-vllm-standin: listen on {}: {e}", opts.listen);
            std::process::exit(1);
        });
    eprintln!(
        "kubegrid-vllm-standin: serving {} on http://{addr}",
        opts.serving.served_name
    );
    // vLLM stops at SIGTERM and fails what it holds; so does the stand-in.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .unwrap_or_else(|e| {
            eprintln!("kubegrid-vllm-standin: SIGTERM handler: {e}");
            std::process::exit(1);
        });
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!("kubegrid-vllm-standin: stopping; requests in flight fail");
    std::process::exit(0);
}
