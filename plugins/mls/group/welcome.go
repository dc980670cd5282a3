package group

import (
	"bytes"
	"fmt"

	"github.com/strata-msg/strata/plugins/mls/schedule"
	"github.com/strata-msg/strata/plugins/mls/suite"
	"github.com/strata-msg/strata/plugins/mls/tree"
	"github.com/strata-msg/strata/plugins/mls/treekem"
	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// Join joins a group from a Welcome made for bundle's KeyPackage (RFC 9420
// §12.4.3.1): it finds the member's entry by KeyPackageRef, decrypts the
// GroupSecrets with the init key, takes every PSK they name (external ones
// from Config.ExternalPSK), decrypts the GroupInfo, takes the ratchet tree
// from its ratchet_tree extension or, if it has none, from ratchetTree,
// and checks the tree completely: the GroupInfo's signature by its signer's
// leaf, the tree hash against the GroupContext, every parent hash, every
// leaf signature, unmerged-leaf consistency, distinct keys, every member
// supporting the group's required capabilities and credentials, and the
// member's own leaf equal to its KeyPackage's. It then installs the path
// secret at the lowest common ancestor with the signer (checking every key
// it derives against the tree), runs the key schedule and checks the
// confirmation tag.
func Join(cfg Config, bundle *KeyPackageBundle, welcome *wire.Welcome, ratchetTree wire.RatchetTree) (*Group, error) {
	kp := &bundle.KeyPackage
	cs, err := suite.New(suite.ID(kp.CipherSuite))
	if err != nil {
		return nil, fmt.Errorf("mls/group: join: %w", err)
	}
	if welcome.CipherSuite != kp.CipherSuite {
		return nil, fmt.Errorf("%w: Welcome of suite 0x%04x for a KeyPackage of 0x%04x", ErrInvalidWelcome, welcome.CipherSuite, kp.CipherSuite)
	}
	kpBytes, err := wire.Marshal(kp)
	if err != nil {
		return nil, fmt.Errorf("mls/group: join: %w", err)
	}
	ref := cs.MakeKeyPackageRef(kpBytes)
	var mine *wire.EncryptedGroupSecrets
	for i := range welcome.Secrets {
		if bytes.Equal(welcome.Secrets[i].NewMember, ref) {
			mine = &welcome.Secrets[i]
			break
		}
	}
	if mine == nil {
		return nil, fmt.Errorf("%w: no entry for this KeyPackage", ErrInvalidWelcome)
	}
	gsBytes, err := cs.DecryptWithLabel(bundle.InitPriv, "Welcome", welcome.EncryptedGroupInfo,
		mine.EncryptedGroupSecrets.KEMOutput, mine.EncryptedGroupSecrets.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("%w: GroupSecrets: %w", ErrInvalidWelcome, err)
	}
	var gs wire.GroupSecrets
	err = wire.Unmarshal(gsBytes, &gs)
	clear(gsBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	defer clear(gs.JoinerSecret)
	defer clear(gs.PathSecret)

	var psks []schedule.PSK
	for i := range gs.PSKs {
		id := &gs.PSKs[i]
		enc, err := wire.Marshal(id)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
		}
		var secret []byte
		if id.Type == wire.PSKExternal && cfg.ExternalPSK != nil {
			secret, _ = cfg.ExternalPSK(id.PSKID)
		}
		if secret == nil {
			return nil, fmt.Errorf("%w: %x", ErrMissingPSK, enc)
		}
		psks = append(psks, schedule.PSK{ID: enc, Secret: secret})
	}
	pskSecret, err := schedule.PSKSecret(cs, psks)
	if err != nil {
		return nil, err
	}
	defer clear(pskSecret)
	ws, err := schedule.WelcomeSecret(cs, gs.JoinerSecret, pskSecret)
	if err != nil {
		return nil, err
	}
	key, nonce, err := schedule.WelcomeKeyNonce(cs, ws)
	clear(ws)
	if err != nil {
		return nil, err
	}
	giBytes, err := cs.Open(key, nonce, nil, welcome.EncryptedGroupInfo)
	clear(key)
	if err != nil {
		return nil, fmt.Errorf("%w: GroupInfo: %w", ErrInvalidWelcome, err)
	}
	var gi wire.GroupInfo
	if err := wire.Unmarshal(giBytes, &gi); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	ctx := gi.GroupContext
	if ctx.Version != 1 || ctx.CipherSuite != kp.CipherSuite {
		return nil, fmt.Errorf("%w: GroupContext of version %d, suite 0x%04x", ErrInvalidWelcome, ctx.Version, ctx.CipherSuite)
	}

	rt := ratchetTree
	for _, e := range gi.Extensions {
		if e.Type == wire.ExtensionRatchetTree {
			if err := wire.Unmarshal(e.Data, &rt); err != nil {
				return nil, fmt.Errorf("%w: ratchet_tree: %w", ErrInvalidWelcome, err)
			}
		}
	}
	if rt == nil {
		return nil, fmt.Errorf("%w: no ratchet tree", ErrInvalidWelcome)
	}
	tr, err := tree.FromWire(rt)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	signer := tr.Leaf(treemath.Leaf(gi.Signer))
	if signer == nil {
		return nil, fmt.Errorf("%w: GroupInfo signer %d is not a member", ErrInvalidWelcome, gi.Signer)
	}
	tbs, err := gi.TBS()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	if err := cs.VerifyWithLabel(signer.SignatureKey, "GroupInfoTBS", tbs, gi.Signature); err != nil {
		return nil, fmt.Errorf("%w: GroupInfo signature: %w", ErrInvalidWelcome, err)
	}
	if err := validateTree(cs, tr, &ctx); err != nil {
		return nil, err
	}
	if err := cfg.acceptTree(tr); err != nil {
		return nil, err
	}
	leafBytes, err := wire.Marshal(&kp.LeafNode)
	if err != nil {
		return nil, fmt.Errorf("mls/group: join: %w", err)
	}
	me, found := treemath.Leaf(0), false
	for l := range treemath.Leaf(tr.LeafCount()) {
		if leaf := tr.Leaf(l); leaf != nil && bytes.Equal(leaf.SignatureKey, kp.LeafNode.SignatureKey) {
			b, err := wire.Marshal(leaf)
			if err == nil && bytes.Equal(b, leafBytes) {
				me, found = l, true
				break
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("%w: the KeyPackage's leaf is not in the tree", ErrInvalidWelcome)
	}
	priv := treekem.NewPrivate(cs, me, bundle.EncryptionPriv)
	if gs.PathSecret != nil {
		x := treemath.CommonAncestor(me.Node(), treemath.Leaf(gi.Signer).Node())
		if err := priv.JoinAt(tr, treemath.Leaf(gi.Signer), x, gs.PathSecret); err != nil {
			priv.Destroy()
			return nil, fmt.Errorf("%w: path secret: %w", ErrInvalidWelcome, err)
		}
	}
	if err := priv.Check(tr); err != nil {
		priv.Destroy()
		return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}

	ctxBytes, err := wire.Marshal(&ctx)
	if err != nil {
		priv.Destroy()
		return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	keys, err := schedule.NewEpoch(cs, gs.JoinerSecret, pskSecret, ctxBytes)
	if err != nil {
		priv.Destroy()
		return nil, err
	}
	if !schedule.VerifyConfirmationTag(cs, keys.ConfirmationKey, ctx.ConfirmedTranscriptHash, gi.ConfirmationTag) {
		keys.Destroy()
		priv.Destroy()
		return nil, fmt.Errorf("%w: GroupInfo: %w", ErrInvalidWelcome, ErrConfirmationTag)
	}
	secrets, err := schedule.NewSecretTree(cs, keys.EncryptionSecret, tr.LeafCount(), cfg.Retention)
	if err != nil {
		keys.Destroy()
		priv.Destroy()
		return nil, err
	}
	g := &Group{
		cs: cs, cfg: cfg, id: bundle.Identity, priv: priv, updates: map[string][]byte{},
		interim: schedule.InterimTranscriptHash(cs, ctx.ConfirmedTranscriptHash, gi.ConfirmationTag),
	}
	g.enterEpoch(ctx, tr, keys, secrets)
	return g, nil
}

// validateTree runs every check RFC 9420 §12.4.3.1 asks of a ratchet tree
// received by a new member.
func validateTree(cs *suite.Suite, tr *tree.Tree, ctx *wire.GroupContext) error {
	th, err := tr.TreeHash(cs)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	if !bytes.Equal(th, ctx.TreeHash) {
		return fmt.Errorf("%w: the ratchet tree's hash is not the GroupContext's", ErrInvalidWelcome)
	}
	if err := tr.VerifyParentHashes(cs); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	if err := tr.VerifyLeafSignatures(cs, ctx.GroupID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	if err := tr.VerifyUnmergedLeaves(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	if err := tr.VerifyDistinctKeys(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	if err := checkMembersSupport(tr, ctx.Extensions, nil, true); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	return nil
}
