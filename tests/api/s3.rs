//! A real S3-protocol server for the tests: s3s-fs, in process, on `127.0.0.1:0`.

pub const BUCKET: &str = "reelgraph-test";
pub const ACCESS_KEY: &str = "AKIAREELGRAPHTEST";
pub const SECRET_KEY: &str = "reelgraph-test-secret-key";

pub struct S3Server {
    pub endpoint: String,
    dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl S3Server {
    /// The parts of multipart uploads not completed nor aborted (s3s-fs keeps each as a file
    /// `.upload_id-<id>.part-<n>` in its root).
    pub fn pending_parts(&self) -> usize {
        std::fs::read_dir(self.dir.path())
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(".upload_id-"))
                    .count()
            })
            .unwrap_or(0)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start() -> S3Server {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join(BUCKET)).expect("bucket folder");
    let fs = s3s_fs::FileSystem::new(dir.path()).expect("s3s-fs");
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            });
        }
    });
    S3Server {
        endpoint,
        dir,
        task,
    }
}

/// `server`'s endpoint under the name clients use for it.
pub fn public_endpoint(server: &S3Server) -> String {
    server.endpoint.replace("127.0.0.1", "localhost")
}

/// Points an app's configuration at `server`.
pub fn configure(config: &mut reelgraph::config::Config, server: &S3Server) {
    config.s3_bucket = Some(BUCKET.to_owned());
    config.s3_endpoint = Some(server.endpoint.clone());
    // Clients reach the service under another name than the server does (as a browser reaches
    // a MinIO the server knows as `minio:9000`): every presigned link must use that one.
    config.s3_public_endpoint = Some(public_endpoint(server));
    config.s3_force_path_style = true;
    config.s3_access_key_id = Some(ACCESS_KEY.to_owned());
    config.s3_secret_access_key = Some(SECRET_KEY.to_owned());
}

/// [`configure`] in one `STORAGE_URL` (credentials stay separate settings, as in production).
pub fn configure_url(config: &mut reelgraph::config::Config, server: &S3Server) {
    config.storage_url = Some(format!(
        "s3://{BUCKET}?endpoint={}&public_endpoint={}&force_path_style=true&region=us-east-1",
        urlencoding::encode(&server.endpoint),
        urlencoding::encode(&public_endpoint(server)),
    ));
    // The test app's PostgreSQL default is a shared folder; STORAGE_URL replaces it.
    config.storage_dir = None;
    config.s3_access_key_id = Some(ACCESS_KEY.to_owned());
    config.s3_secret_access_key = Some(SECRET_KEY.to_owned());
}
