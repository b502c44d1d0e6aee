//! The 25 built-in platforms of the simulated JumpServer and their JSON shape (060-063), with
//! the automation and protocol settings hosts and accounts embed (`auto_config`).
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct PlatformProtocol {
    pub id: u32,
    pub name: &'static str,
    pub port: u16,
    pub primary: bool,
    pub default: bool,
}

#[derive(Debug, Clone)]
pub struct Platform {
    pub id: u64,
    pub name: &'static str,
    pub type_value: &'static str,
    pub type_label: &'static str,
    pub category: &'static str,
    pub protocols: Vec<PlatformProtocol>,
}

impl Platform {
    pub fn is_windows(&self) -> bool {
        self.type_value == "windows"
    }
}

fn proto(id: u32, name: &'static str, port: u16, primary: bool, default: bool) -> PlatformProtocol {
    PlatformProtocol {
        id,
        name,
        port,
        primary,
        default,
    }
}

/// The 25 built-in platforms of a fresh v4.10.16. Ids observed live: Linux 1, Unix 2, macOS 3,
/// BSD 4, Windows 5, AIX 10, Cisco 14 (and 25 rows in total); the other ids follow the built-in
/// creation order and are an inference, as are non-host protocol ids. Clients resolve by name.
pub fn builtin_platforms() -> Vec<Platform> {
    fn mk(
        id: u64,
        name: &'static str,
        ty: (&'static str, &'static str),
        category: &'static str,
        protocols: Vec<PlatformProtocol>,
    ) -> Platform {
        Platform {
            id,
            name,
            type_value: ty.0,
            type_label: ty.1,
            category,
            protocols,
        }
    }
    let unix_protos = |base: u32| {
        vec![
            proto(base + 1, "telnet", 23, false, false),
            proto(base + 2, "vnc", 5900, false, false),
            proto(base + 3, "rdp", 3389, false, false),
            proto(base, "ssh", 22, true, false),
        ]
    };
    let win_protos = |base: u32| {
        vec![
            proto(base + 1, "ssh", 22, false, false),
            proto(base + 2, "vnc", 5900, false, false),
            proto(base + 3, "winrm", 5985, false, false),
            proto(base, "rdp", 3389, true, false),
        ]
    };
    let single = |id: u32, name: &'static str, port: u16| vec![proto(id, name, port, true, false)];
    const LINUX: (&str, &str) = ("linux", "Linux");
    const UNIX: (&str, &str) = ("unix", "Unix");
    const WIN: (&str, &str) = ("windows", "Windows");
    const GENERAL: (&str, &str) = ("general", "General");
    let mut v = vec![
        mk(
            1,
            "Linux",
            LINUX,
            "host",
            vec![
                proto(2, "telnet", 23, false, false),
                proto(3, "vnc", 5900, false, false),
                proto(4, "rdp", 3389, false, false),
                proto(5, "sftp", 22, false, true),
                proto(1, "ssh", 22, true, false),
            ],
        ),
        mk(2, "Unix", UNIX, "host", unix_protos(6)),
        mk(3, "macOS", UNIX, "host", unix_protos(10)),
        mk(4, "BSD", UNIX, "host", unix_protos(14)),
        mk(5, "Windows", WIN, "host", win_protos(18)),
        mk(6, "Windows2016", WIN, "host", win_protos(22)),
        mk(
            7,
            "Other",
            ("other", "Other"),
            "host",
            single(26, "ssh", 22),
        ),
        mk(8, "Windows-RDP", WIN, "host", win_protos(28)),
        mk(9, "Windows-TLS", WIN, "host", win_protos(32)),
        mk(10, "AIX", UNIX, "host", unix_protos(40)),
        mk(11, "Gateway", LINUX, "host", single(44, "ssh", 22)),
        mk(12, "RemoteAppHost", WIN, "host", win_protos(46)),
        mk(13, "General", GENERAL, "device", single(52, "ssh", 22)),
        mk(
            14,
            "Cisco",
            GENERAL,
            "device",
            vec![
                proto(55, "telnet", 23, false, false),
                proto(54, "ssh", 22, true, false),
            ],
        ),
        mk(15, "Huawei", GENERAL, "device", single(56, "ssh", 22)),
        mk(16, "H3C", GENERAL, "device", single(58, "ssh", 22)),
        mk(
            17,
            "MySQL",
            ("mysql", "MySQL"),
            "database",
            single(60, "mysql", 3306),
        ),
        mk(
            18,
            "MariaDB",
            ("mariadb", "MariaDB"),
            "database",
            single(61, "mariadb", 3306),
        ),
        mk(
            19,
            "PostgreSQL",
            ("postgresql", "PostgreSQL"),
            "database",
            single(62, "postgresql", 5432),
        ),
        mk(
            20,
            "Oracle",
            ("oracle", "Oracle"),
            "database",
            single(63, "oracle", 1521),
        ),
        mk(
            21,
            "SQLServer",
            ("sqlserver", "SQLServer"),
            "database",
            single(64, "sqlserver", 1433),
        ),
        mk(
            22,
            "ClickHouse",
            ("clickhouse", "ClickHouse"),
            "database",
            single(65, "clickhouse", 9000),
        ),
        mk(
            23,
            "MongoDB",
            ("mongodb", "MongoDB"),
            "database",
            single(66, "mongodb", 27017),
        ),
        mk(
            24,
            "Redis",
            ("redis", "Redis"),
            "database",
            single(67, "redis", 6379),
        ),
        mk(
            25,
            "Website",
            ("website", "Website"),
            "web",
            single(68, "http", 80),
        ),
    ];
    v.sort_by(|a, b| a.name.cmp(b.name));
    v
}

fn category_label(c: &str) -> &'static str {
    match c {
        "host" => "Host",
        "device" => "Device",
        "database" => "Database",
        "web" => "Web",
        _ => "Custom",
    }
}

pub(super) fn protocol_setting(name: &str) -> Value {
    match name {
        "ssh" => json!({"sftp_home": "/tmp", "sftp_enabled": true}),
        "sftp" => json!({"sftp_home": "/tmp"}),
        "rdp" => json!({"console": false, "security": "any"}),
        "winrm" => json!({"use_ssl": false}),
        _ => json!({}),
    }
}

fn automation(p: &Platform) -> serde_json::Map<String, Value> {
    let v = if p.category != "host" {
        json!({"id": p.id, "ansible_enabled": true, "ansible_config": {"ansible_connection": "local", "first_connect_delay": 0.5},
            "ping_enabled": true, "ping_method": "ping_by_ssh", "ping_params": {},
            "push_account_enabled": false, "push_account_method": null, "push_account_params": {},
            "gather_facts_enabled": false, "gather_facts_method": null, "gather_facts_params": {},
            "change_secret_enabled": true, "change_secret_method": "change_secret_by_ssh", "change_secret_params": {},
            "verify_account_enabled": true, "verify_account_method": "verify_account_by_ssh", "verify_account_params": {},
            "gather_accounts_enabled": false, "gather_accounts_method": null, "gather_accounts_params": {},
            "remove_account_enabled": false, "remove_account_method": null, "remove_account_params": {}})
    } else if p.is_windows() {
        json!({"id": p.id, "ansible_enabled": true, "ansible_config": {"ansible_connection": "ssh", "ansible_shell_type": "cmd"},
            "ping_enabled": true, "ping_method": "ping_by_rdp", "ping_params": {},
            "push_account_enabled": true, "push_account_method": "push_account_local_windows", "push_account_params": {"groups": "Users,Remote Desktop Users"},
            "gather_facts_enabled": true, "gather_facts_method": "gather_facts_windows", "gather_facts_params": {},
            "change_secret_enabled": true, "change_secret_method": "change_secret_local_windows", "change_secret_params": {},
            "verify_account_enabled": true, "verify_account_method": "verify_account_by_rdp", "verify_account_params": {},
            "gather_accounts_enabled": true, "gather_accounts_method": "gather_accounts_windows", "gather_accounts_params": {},
            "remove_account_enabled": true, "remove_account_method": "remove_account_windows", "remove_account_params": {}})
    } else {
        json!({"id": p.id, "ansible_enabled": true, "ansible_config": {"ansible_connection": "smart"},
            "ping_enabled": true, "ping_method": "posix_ping", "ping_params": {},
            "push_account_enabled": true, "push_account_method": "push_account_posix", "push_account_params": {"home": "", "sudo": "/bin/whoami", "shell": "/bin/bash", "groups": ""},
            "gather_facts_enabled": true, "gather_facts_method": "gather_facts_posix", "gather_facts_params": {},
            "change_secret_enabled": true, "change_secret_method": "change_secret_posix", "change_secret_params": {},
            "verify_account_enabled": true, "verify_account_method": "verify_account_posix", "verify_account_params": {},
            "gather_accounts_enabled": true, "gather_accounts_method": "gather_accounts_posix", "gather_accounts_params": {},
            "remove_account_enabled": true, "remove_account_method": "remove_account_posix", "remove_account_params": {}})
    };
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// A host's `auto_config`: the platform automation plus `su_enabled`/`gateway_enabled`/`platform`.
pub(super) fn auto_config(p: &Platform) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("su_enabled".into(), json!(true));
    m.insert("gateway_enabled".into(), json!(true));
    m.extend(automation(p));
    m.insert("platform".into(), json!(p.id));
    Value::Object(m)
}

pub fn platform_json(p: &Platform, assets_amount: usize) -> Value {
    let protocols: Vec<Value> = p
        .protocols
        .iter()
        .map(|x| {
            let secret_types = if x.name == "ssh" || x.name == "sftp" {
                json!(["password", "ssh_key"])
            } else {
                json!(["password"])
            };
            json!({"id": x.id, "name": x.name, "port": x.port, "port_from_addr": false, "primary": x.primary,
                "required": false, "default": x.default, "public": true, "secret_types": secret_types,
                "setting": protocol_setting(x.name)})
        })
        .collect();
    let su_method = if p.category == "device" {
        json!({"value": "enable", "label": "enable"})
    } else {
        Value::Null
    };
    json!({"su_method": su_method, "type": {"value": p.type_value, "label": p.type_label},
        "category": {"value": p.category, "label": category_label(p.category)},
        "id": p.id, "protocols": protocols, "charset": {"value": "utf-8", "label": "UTF-8"},
        "custom_fields": [], "labels": [], "assets_amount": assets_amount, "automation": Value::Object(automation(p)),
        "name": p.name, "ds_enabled": false, "su_enabled": true, "internal": true, "gateway_enabled": true,
        "date_created": "2026/11/22 19:19:42 +0800", "date_updated": "2026/11/22 19:19:42 +0800",
        "updated_by": "System", "created_by": "System", "comment": ""})
}
