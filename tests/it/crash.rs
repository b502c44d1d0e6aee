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
