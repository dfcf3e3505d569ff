//! `duration.HumanDuration` (k8s.io/apimachinery `pkg/util/duration`): the ages kubectl
//! shows (`45s`, `5m30s`, `3h`, `2d4h`, `1y10d`).

/// A human-readable age for `seconds` (kube's ~2-3 significant figures).
pub fn human(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_owned();
    } else if seconds < 0 {
        return "0s".to_owned();
    } else if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    } else if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        }
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human(-5), "<invalid>");
        assert_eq!(human(-1), "0s");
        assert_eq!(human(45), "45s");
        assert_eq!(human(119), "119s");
        assert_eq!(human(330), "5m30s");
        assert_eq!(human(300), "5m");
        assert_eq!(human(3 * 3600), "3h");
        assert_eq!(human(3 * 3600 + 600), "3h10m");
        assert_eq!(human(20 * 3600), "20h");
        assert_eq!(human(52 * 3600), "2d4h");
        assert_eq!(human(30 * 86400), "30d");
        assert_eq!(human(375 * 86400 * 3), "3y30d");
        assert_eq!(human(365 * 86400 * 9), "9y");
    }
}
