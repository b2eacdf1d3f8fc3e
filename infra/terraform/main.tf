# AWS for several Kinko nodes: the blob bucket, the WORM anchor bucket of audit checkpoints,
# the KMS key wrapping case keys (KINKO_KEY_PROVIDER=aws-kms) and encrypting both buckets, the
# least-privilege policy of the nodes, and optionally the PostgreSQL instance.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account = data.aws_caller_identity.current.account_id
  arn     = data.aws_partition.current.partition
}

# -- the key --------------------------------------------------------------------------------

resource "aws_kms_key" "vault" {
  description             = "${var.name}: master key of case keys, and the buckets' encryption"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json
}

resource "aws_kms_alias" "vault" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.vault.key_id
}

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_111:This is the key's own key policy: "*" there means this key only, and the account root statement is what lets IAM policies (the node policy below) grant its use.
  #checkov:skip=CKV_AWS_356:In a key policy the resource "*" is the key the policy is attached to; no other resource can be named.
  #checkov:skip=CKV_AWS_109:The account administers its own key through IAM (AWS's default key policy); without it the key could become unmanageable.
  # The account administers the key through IAM; using it is granted by the node policy below.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.arn}:iam::${local.account}:root"]
    }
  }
}

# -- the blob bucket ------------------------------------------------------------------------

resource "aws_s3_bucket" "blobs" {
  bucket_prefix = "${var.name}-blobs-"
  #checkov:skip=CKV_AWS_18:Access logging would need a log bucket of its own; every access is already in Kinko's audit log, which records who read what and why.
  #checkov:skip=CKV_AWS_144:Cross-region replication is a deployment decision (a second region, its own key); versioning and KMS protect the objects here.
  #checkov:skip=CKV2_AWS_62:Kinko does not react to bucket events; nothing would consume the notifications.
}

resource "aws_s3_bucket_versioning" "blobs" {
  bucket = aws_s3_bucket.blobs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_public_access_block" "blobs" {
  bucket                  = aws_s3_bucket.blobs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "blobs" {
  bucket = aws_s3_bucket.blobs.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "blobs" {
  bucket = aws_s3_bucket.blobs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.vault.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "blobs" {
  bucket = aws_s3_bucket.blobs.id
  rule {
    id     = "abort-incomplete-uploads-and-expire-old-versions"
    status = "Enabled"
    filter {}
    # An upload cut short leaves parts nobody will complete.
    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }
    # Kinko never overwrites a blob; an old version exists only after a delete (storage gc).
    noncurrent_version_expiration {
      noncurrent_days = 90
    }
  }
}

resource "aws_s3_bucket_policy" "blobs" {
  bucket = aws_s3_bucket.blobs.id
  policy = data.aws_iam_policy_document.tls_only["blobs"].json
}

# -- the anchor bucket (WORM) ---------------------------------------------------------------

resource "aws_s3_bucket" "anchors" {
  bucket_prefix       = "${var.name}-anchors-"
  object_lock_enabled = true
  #checkov:skip=CKV_AWS_18:Access logging would need a log bucket of its own; the anchors are written by Kinko only and are immutable under Object Lock.
  #checkov:skip=CKV_AWS_144:Cross-region replication is a deployment decision; Object Lock in compliance mode already keeps every checkpoint for the retention period.
  #checkov:skip=CKV2_AWS_62:Nothing consumes bucket events; verifiers read the checkpoints when they audit.
  #checkov:skip=CKV2_AWS_61:Anchored checkpoints must outlive any lifecycle rule: they are kept for the Object Lock retention and never expire earlier.
}

resource "aws_s3_bucket_versioning" "anchors" {
  bucket = aws_s3_bucket.anchors.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_object_lock_configuration" "anchors" {
  bucket = aws_s3_bucket.anchors.id
  rule {
    default_retention {
      mode = "COMPLIANCE"
      days = var.anchor_retention_days
    }
  }
  depends_on = [aws_s3_bucket_versioning.anchors]
}

resource "aws_s3_bucket_public_access_block" "anchors" {
  bucket                  = aws_s3_bucket.anchors.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "anchors" {
  bucket = aws_s3_bucket.anchors.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "anchors" {
  bucket = aws_s3_bucket.anchors.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.vault.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_policy" "anchors" {
  bucket = aws_s3_bucket.anchors.id
  policy = data.aws_iam_policy_document.tls_only["anchors"].json
}

# Both buckets refuse requests that do not use TLS.
data "aws_iam_policy_document" "tls_only" {
  for_each = {
    blobs   = aws_s3_bucket.blobs.arn
    anchors = aws_s3_bucket.anchors.arn
  }
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value, "${each.value}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

# -- what a node may do ---------------------------------------------------------------------

data "aws_iam_policy_document" "node" {
  # Blobs: write new objects, read, list (storage gc, migration), delete (gc, failed writes).
  statement {
    sid       = "BlobObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.blobs.arn}/blobs/*"]
  }
  statement {
    sid       = "BlobListing"
    actions   = ["s3:ListBucket", "s3:ListBucketMultipartUploads"]
    resources = [aws_s3_bucket.blobs.arn]
  }
  # Anchors: add checkpoints and read them back; never delete, never shorten retention.
  statement {
    sid       = "AnchorObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:PutObjectRetention", "s3:GetObjectRetention"]
    resources = ["${aws_s3_bucket.anchors.arn}/*"]
  }
  statement {
    sid       = "AnchorBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketObjectLockConfiguration"]
    resources = [aws_s3_bucket.anchors.arn]
  }
  # Case keys are wrapped and unwrapped by KMS; the buckets' encryption uses the same key.
  statement {
    sid       = "VaultKey"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.vault.arn]
  }
}

resource "aws_iam_policy" "node" {
  name        = "${var.name}-node"
  description = "What a Kinko node needs: its buckets and its key, nothing else"
  policy      = data.aws_iam_policy_document.node.json
}

data "aws_iam_policy_document" "assume_node" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = length(var.node_principal_arns) > 0 ? "AWS" : "Service"
      identifiers = length(var.node_principal_arns) > 0 ? var.node_principal_arns : ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name               = "${var.name}-node"
  assume_role_policy = data.aws_iam_policy_document.assume_node.json
}

resource "aws_iam_role_policy_attachment" "node" {
  role       = aws_iam_role.node.name
  policy_arn = aws_iam_policy.node.arn
}

# -- PostgreSQL (optional) ------------------------------------------------------------------

resource "aws_db_subnet_group" "vault" {
  count      = var.create_database ? 1 : 0
  name       = "${var.name}-db"
  subnet_ids = var.database_subnet_ids
}

resource "aws_db_parameter_group" "vault" {
  count  = var.create_database ? 1 : 0
  name   = "${var.name}-postgres16"
  family = "postgres16"
  # The audit log's commit is what allows a read to be served: it must be durable.
  parameter {
    name  = "synchronous_commit"
    value = "on"
  }
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "log_statement"
    value = "ddl"
  }
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }
}

resource "aws_iam_role" "rds_monitoring" {
  count = var.create_database ? 1 : 0
  name  = "${var.name}-rds-monitoring"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "monitoring.rds.amazonaws.com" }
    }]
  })
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  count      = var.create_database ? 1 : 0
  role       = aws_iam_role.rds_monitoring[0].name
  policy_arn = "arn:${local.arn}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "vault" {
  count                               = var.create_database ? 1 : 0
  identifier                          = var.name
  engine                              = "postgres"
  engine_version                      = "16"
  instance_class                      = var.database_instance_class
  allocated_storage                   = 100
  max_allocated_storage               = 1000
  storage_type                        = "gp3"
  storage_encrypted                   = true
  kms_key_id                          = aws_kms_key.vault.arn
  db_name                             = "kinko"
  username                            = "kinko"
  manage_master_user_password         = true
  master_user_secret_kms_key_id       = aws_kms_key.vault.arn
  db_subnet_group_name                = aws_db_subnet_group.vault[0].name
  vpc_security_group_ids              = var.database_security_group_ids
  parameter_group_name                = aws_db_parameter_group.vault[0].name
  publicly_accessible                 = false
  multi_az                            = true
  backup_retention_period             = 35
  deletion_protection                 = true
  copy_tags_to_snapshot               = true
  auto_minor_version_upgrade          = true
  iam_database_authentication_enabled = true
  performance_insights_enabled        = true
  performance_insights_kms_key_id     = aws_kms_key.vault.arn
  monitoring_interval                 = 30
  monitoring_role_arn                 = aws_iam_role.rds_monitoring[0].arn
  enabled_cloudwatch_logs_exports     = ["postgresql", "upgrade"]
  final_snapshot_identifier           = "${var.name}-final"
  skip_final_snapshot                 = false
}
