//! The Kubernetes API's errors as the fleet's: transient (try again with backoff) or permanent (an admin must
//! change something), in words that say what to change. The one place API errors are mapped.

use tollgate_fleet::DriverError;

/// `what` names the call ("creating pod tollgate-rep-1").
pub fn classify(what: &str, e: &kube::Error) -> DriverError {
    match e {
        kube::Error::Api(status) => {
            let message = if status.message.is_empty() {
                status.reason.clone()
            } else {
                status.message.clone()
            };
            match status.code {
                401 => DriverError::Permanent(format!(
                    "{what}: the Kubernetes API refused Tollgate's credentials (401): {message}"
                )),
                403 => DriverError::Permanent(format!(
                    "{what}: forbidden (403); the service account needs the RBAC rules in deploy/kubernetes/rbac.yaml: {message}"
                )),
                404 => DriverError::Permanent(format!(
                    "{what}: not found (404), is the namespace right? {message}"
                )),
                400 | 422 => DriverError::Permanent(format!(
                    "{what}: the cluster refused the object ({}): {message}",
                    status.code
                )),
                // 409: a concurrent change; 410: a watch's version expired; 429, 5xx: the API server is busy
                // or restarting (kube's client has already retried 429, 503 and 504 with backoff).
                _ => DriverError::Transient(format!(
                    "{what}: the Kubernetes API answered {}: {message}",
                    status.code
                )),
            }
        }
        other => DriverError::Transient(format!(
            "{what}: the Kubernetes API could not be reached: {other}"
        )),
    }
}

/// A call that took longer than the configured API timeout.
pub fn timed_out(what: &str, after: std::time::Duration) -> DriverError {
    DriverError::Transient(format!(
        "{what}: the Kubernetes API did not answer within {} s",
        after.as_secs_f32()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, reason: &str) -> kube::Error {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": code, "reason": reason, "message": format!("{reason} happened")
        }))
        .unwrap();
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn permission_and_invalid_objects_are_permanent_the_rest_transient() {
        for (code, permanent) in [
            (401, true),
            (403, true),
            (404, true),
            (422, true),
            (409, false),
            (410, false),
            (429, false),
            (500, false),
            (503, false),
        ] {
            let e = classify("creating pod p", &api(code, "Something"));
            assert_eq!(
                matches!(e, DriverError::Permanent(_)),
                permanent,
                "{code}: {e}"
            );
            assert!(e.to_string().starts_with("creating pod p: "), "{e}");
        }
        assert!(classify("x", &api(403, "Forbidden"))
            .to_string()
            .contains("rbac.yaml"));
        assert!(matches!(
            timed_out("x", std::time::Duration::from_secs(10)),
            DriverError::Transient(_)
        ));
    }
}
