//! TEMPORARY stand-in (auth off) until the helper's fixture lands.
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

pub struct AwsKey {
    pub id: String,
    pub secret: String,
}
pub struct Moto {
    pub endpoint: String,
    pub admin: AwsKey,
    _child: Child,
}

impl Moto {
    pub fn shared() -> &'static Moto {
        static M: OnceLock<Moto> = OnceLock::new();
        M.get_or_init(|| {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let child = Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            for _ in 0..100 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Moto {
                endpoint: format!("http://127.0.0.1:{port}"),
                admin: AwsKey { id: "AKIAADMIN".into(), secret: "admin".into() },
                _child: child,
            }
        })
    }
    pub fn create_user(&self, _name: &str, _policy: &str) -> AwsKey {
        AwsKey { id: "AKIAUSER".into(), secret: "user".into() }
    }
}
