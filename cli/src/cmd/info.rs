//! `citizencard info`: what a card holds — the issuer and cardholder data of its
//! social-security environment, its photo, the purse's public information.

use std::path::PathBuf;

use clap::Args;
use host_lib::ssse::{read_card, CardContents, ReadMode, ReadOptions};
use host_lib::transport;

use super::issue::Setup;
use crate::exit::Failure;
use crate::Global;

/// Arguments of `citizencard info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub setup: Setup,
    /// Address the EF05/EF06 items by tag (`00 B2 tag …`) instead of by record number.
    #[arg(long)]
    pub by_tag: bool,
    /// Save the photo (a JPEG) to this file.
    #[arg(long, value_name = "FILE.jpg", conflicts_with = "no_photo")]
    pub photo: Option<PathBuf>,
    /// Do not read the photo (up to 16 APDUs fewer).
    #[arg(long)]
    pub no_photo: bool,
}

/// Runs `citizencard info`.
pub fn run(global: &Global, args: InfoArgs) -> Result<(), Failure> {
    let (keys, profile) = args.setup.load_for_reading()?;
    let mut t = transport::open(&global.open_options())?;
    let options = ReadOptions {
        mode: if args.by_tag {
            ReadMode::ByTag
        } else {
            ReadMode::ByRecord
        },
        photo: !args.no_photo,
    };
    let c = read_card(t.as_mut(), &keys, &profile, options).map_err(Failure::card)?;
    if let (Some(path), Some(p)) = (&args.photo, &c.photo) {
        host_lib::private_fs::write_private_atomic(path, p.bytes())
            .map_err(|e| Failure::card(anyhow::anyhow!("writing {}: {e}", path.display())))?;
    }
    if global.json {
        let v = serde_json::to_value(&c).map_err(Failure::card)?;
        println!("{v}");
        return Ok(());
    }
    if let Some(info) = c.card_info.as_ref().filter(|i| i.development && i.issued) {
        eprintln!(
            "citizencard: note: this card was issued with the PUBLIC development key set {}: \
             anyone can read and change it",
            info.key_set
        );
    }
    print!("{}", table(&c, args.photo.as_ref()));
    Ok(())
}

fn row(out: &mut String, label: &str, value: impl std::fmt::Display) {
    // Labels mix Chinese (two columns) and ASCII: pad by display width.
    let width: usize = label.chars().map(super::issue::char_width).sum();
    out.push_str(&format!(
        "  {label}{} {value}\n",
        " ".repeat(32usize.saturating_sub(width))
    ));
}

/// The card as a table for people.
pub fn table(c: &CardContents, photo_file: Option<&PathBuf>) -> String {
    let mut s = String::new();
    let i = &c.issuer;
    let h = &c.holder;
    s.push_str("Card\n");
    match &c.card_info {
        Some(info) if info.issued => row(
            &mut s,
            "state",
            format!(
                "issued (profile {}, key set {}{})",
                info.profile,
                info.key_set,
                if info.development {
                    ", DEVELOPMENT keys"
                } else {
                    ""
                }
            ),
        ),
        Some(_) => row(
            &mut s,
            "state",
            "NOT ISSUED: personalization did not finish",
        ),
        None => row(
            &mut s,
            "state",
            "no card information file (not made by citizencard)",
        ),
    }
    row(
        &mut s,
        "chip serial",
        c.chip_serial.as_deref().unwrap_or("(ATR without one)"),
    );
    row(&mut s, "ATR", &c.atr);
    row(
        &mut s,
        "SSSE algorithm",
        format!(
            "{}{}",
            c.ssse.algorithm_name(),
            c.ssse
                .algorithm
                .map(|a| format!(" (86 01 {a:02X})"))
                .unwrap_or_default()
        ),
    );
    s.push_str("EF05 发卡机构数据 (issuer data)\n");
    row(&mut s, "卡号 card number", &i.card_number);
    let id = i.card_id.encode();
    row(
        &mut s,
        "卡的识别码 card id",
        format!(
            "{} {} {} {} (city {}, serial {}, authentication code {})",
            hex::encode_upper(&id[..3]),
            hex::encode_upper(&id[3..8]),
            hex::encode_upper(&id[8..12]),
            hex::encode_upper(&id[12..]),
            i.card_id.city.full_name(),
            i.card_id.serial,
            hex::encode_upper(i.card_id.auth_code)
        ),
    );
    row(&mut s, "卡的类别 card class", i.card_class);
    row(&mut s, "规范版本 spec version", &i.spec_version);
    row(&mut s, "初始化机构编号 initialising org", i.init_org);
    row(&mut s, "发卡日期 issue date", i.issue_date);
    row(&mut s, "卡有效期 expiry date", i.expiry_date);
    s.push_str("EF06 持卡人基本信息 (cardholder)\n");
    row(&mut s, "姓名 name", &h.name);
    row(&mut s, "性别 sex", h.sex);
    row(&mut s, "民族 ethnicity", h.ethnicity);
    row(&mut s, "社会保障号码 ID number", h.id_number);
    row(&mut s, "出生日期 birth date", h.birth_date);
    row(
        &mut s,
        "出生地 birthplace",
        format!("{} {}", h.birthplace, h.birthplace.full_name()),
    );
    for w in &c.inconsistencies {
        row(&mut s, "WARNING", w);
    }
    s.push_str("EF08 数字相片 (photo)\n");
    let photo = match (&c.photo_summary, photo_file) {
        (Some(p), Some(f)) => format!("{p}, saved to {}", f.display()),
        (Some(p), None) => p.clone(),
        (None, _) => "none".into(),
    };
    row(&mut s, "photo", photo);
    if let Some(p) = &c.purse {
        s.push_str("e-purse (EF0015)\n");
        row(&mut s, "application serial", &p.app_serial);
        row(&mut s, "issuer", &p.issuer_id);
        row(
            &mut s,
            "valid",
            format!(
                "{} to {}",
                p.start.as_deref().unwrap_or("?"),
                p.expiry.as_deref().unwrap_or("?")
            ),
        );
    }
    s.push_str(&format!(
        "({} APDUs, items read by {})\n",
        c.apdus,
        match c.mode {
            ReadMode::ByRecord => "record number",
            ReadMode::ByTag => "tag",
        }
    ));
    s
}
