//! What a SIGKILL leaves behind, found by the fault script (`scripts/fault.sh`,
//! docs/reliability.md) and pinned down here over real HTTP: the bot must start again on the
//! sled directory a kill left and carry on where it was.
use crate::support::{example_user, BotEnv};

const ZHANGSAN: &str = "zhangsan";
const LISI: &str = "lisi";

async fn env() -> BotEnv {
    BotEnv::new(
        [example_user(ZHANGSAN, "张三"), example_user(LISI, "李四")],
        |_, _| {},
        |cfg| cfg.approval.default_approvers = vec![LISI.into()],
    )
    .await
}

/// sled writes its start-up snapshot to `snap.<lsn>.generating` and renames it into place; a
/// kill before the rename left that file, sled 0.34.7 then took it for the newest snapshot on
/// every later open ("empty/corrupt snapshot file found", "Read corrupted data") and the bot
/// never started again on that directory (fault run seed 21, 100 kills).
#[tokio::test]
async fn a_kill_during_sleds_start_up_snapshot_does_not_brick_the_store() {
    let mut env = env().await;
    env.push_robot_text(ZHANGSAN, "m1", "申请主机 10.1.2.3 运维 1天 原因：排查")
        .await;
    let before: Vec<String> = env
        .orders_of(ZHANGSAN)
        .iter()
        .map(|o| o.id.to_string())
        .collect();
    assert_eq!(before.len(), 1);

    // The kill: the bot is gone and the torn snapshot (empty, the kill came before any byte was
    // written) is newer than every real one.
    drop(env.bot.take());
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    let torn = env
        .db_path()
        .join(format!("snap.{:016X}.generating", 0x7fff_ffff_u64));
    std::fs::write(&torn, b"").unwrap();

    env.start().await;
    let after: Vec<String> = env
        .orders_of(ZHANGSAN)
        .iter()
        .map(|o| o.id.to_string())
        .collect();
    assert_eq!(
        after, before,
        "the order made before the kill is still there"
    );
    assert!(!torn.exists(), "the torn snapshot was cleared away");
    // And the bot works on: a second request over HTTP becomes a second order.
    env.push_robot_text(ZHANGSAN, "m2", "申请主机 10.1.2.4 只读 4小时 原因：核对")
        .await;
    assert_eq!(env.orders_of(ZHANGSAN).len(), 2);
}

/// The sled directory as a SIGKILL at this instant leaves it: the files as the kernel holds
/// them. What sled still buffers in memory (it writes back every 500 ms unless told to flush)
/// is not in them.
fn copy_as_killed(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_as_killed(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn granted_to(env: &BotEnv, user: &str) -> usize {
    env.texts_to(user)
        .iter()
        .filter(|t| t.contains("权限已开通"))
        .count()
}

/// A message job is marked done only after DingTalk took the message; that mark has to reach
/// the disk before a kill can come, or the job runs again and the person reads it twice. The
/// fault script saw 4 to 11 doubled "granted" notices per 50 orders and 25 kills, because the
/// mark waited for sled's next write-back (up to half a second).
#[tokio::test]
async fn a_message_the_bot_marked_sent_is_not_sent_again_after_a_kill() {
    let mut env = env().await;
    env.push_robot_text(ZHANGSAN, "m1", "申请主机 10.1.2.3 运维 1天 原因：排查")
        .await;
    env.drain().await;
    let id = env.orders_of(ZHANGSAN)[0].id.clone();
    env.push_robot_text(LISI, "m2", &format!("/approve {id}"))
        .await;
    env.drain().await;
    assert_eq!(granted_to(&env, ZHANGSAN), 1);

    // SIGKILL now: a new bot starts on what the kill left on disk.
    let killed = env.dir.path().join("killed");
    copy_as_killed(&env.db_path(), &killed);
    drop(env.bot.take());
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    std::fs::remove_dir_all(env.db_path()).unwrap();
    std::fs::rename(&killed, env.db_path()).unwrap();
    env.start().await;
    env.drain().await;

    assert_eq!(
        env.order(&id).state,
        accessbot::domain::order::State::Active
    );
    assert_eq!(
        granted_to(&env, ZHANGSAN),
        1,
        "the granted notice went out a second time: {:?}",
        env.texts_to(ZHANGSAN)
    );
}

/// The fault script itself, small: a handful of requests, a few SIGKILLs of a real
/// `accessbot serve` process, the whole end check. Keeps the driver working between the runs
/// of `scripts/fault.sh` recorded in docs/reliability.md.
#[tokio::test]
async fn the_fault_script_passes_a_short_run() {
    use accessbot::fault::{run, FaultOptions};
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let mut o = FaultOptions::new(
        env!("CARGO_BIN_EXE_accessbot").into(),
        dir.path().join("run"),
        7,
    );
    o.orders = 6;
    o.kills = 3;
    o.min_uptime = Duration::from_millis(50);
    o.max_uptime = Duration::from_millis(400);
    o.max_downtime = Duration::from_millis(50);
    o.max_think = Duration::from_millis(100);
    o.settle = Duration::from_secs(60);
    let report = run(o).await.unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.kills.kills, 3);
    assert_eq!(report.approved + report.rejected, 6);
}
