output "blob_bucket" {
  description = "KINKO_S3_BUCKET"
  value       = aws_s3_bucket.blobs.id
}

output "anchor_bucket" {
  description = "KINKO_AUDIT_ANCHOR_BUCKET"
  value       = aws_s3_bucket.anchors.id
}

output "kms_key_arn" {
  description = "KINKO_KMS_KEY_ID (with KINKO_KEY_PROVIDER=aws-kms)"
  value       = aws_kms_key.vault.arn
}

output "node_role_arn" {
  description = "The role Kinko nodes run as"
  value       = aws_iam_role.node.arn
}

output "database_endpoint" {
  description = "host:port of the RDS instance, for KINKO_DATABASE_URL (empty without create_database)"
  value       = var.create_database ? aws_db_instance.vault[0].endpoint : ""
}
